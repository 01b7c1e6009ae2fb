// Package baseline measures the classic ways of moving bytes between two
// processes, so shmkit's structures can be compared against them in the
// same run on the same machine: pipes, Unix stream socket pairs, System V
// message queues, and, for latency, a bare cache-line ping-pong (two
// processes bouncing one atomic word in shared memory) and a futex
// ping-pong (the same, sleeping in FUTEX_WAIT and waking with FUTEX_WAKE
// every time).
//
// Every measurement runs between the calling process and a real child
// process: the running binary re-executed with an environment variable
// naming the peer role. The child side of this package's own measurements
// runs from its init function, before any other package's init and before
// main or TestMain, so any binary that imports baseline (a test binary,
// cmd/shmbench) can act as a peer without wiring. The child exits when its
// side is done. Other packages can run their own peers the same way
// (RegisterPeer, StartPeer, RunPeer first thing in main).
//
// Measurements are generic in message count and payload size. Throughput
// counts from the first message sent to the child's acknowledgement that it
// received the last one; child start-up is excluded (the child signals
// readiness first). Ping-pong measures count round trips of one message.
//
// The functions are for benchmarks and tools, not for concurrent use with
// each other (each starts and reaps its own child).
package baseline

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shmkit/shmkit/internal/sysv"
	"github.com/shmkit/shmkit/internal/testproc"
)

// Result is one measurement.
type Result struct {
	Name    string        // e.g. "pipe", "unix", "msgq", "spin", "futex"
	Kind    string        // "throughput" or "pingpong"
	Count   int           // messages (throughput) or round trips (ping-pong)
	Size    int           // payload bytes per message
	Elapsed time.Duration // wall time of the measured part
	// Best is the mean time per round trip in the fastest chunk of
	// ChunkOps round trips (ping-pong only; 0 otherwise). On a loaded
	// machine it estimates the cost when both processes had a CPU.
	Best time.Duration
}

// ChunkOps is the chunk size of Stopwatch.
const ChunkOps = 1000

// Stopwatch times a loop of operations and also keeps the fastest chunk of
// ChunkOps consecutive operations, so benchmarks on a busy machine can
// report both the mean and an estimate of the uncontended cost.
type Stopwatch struct {
	start, chunk time.Time
	n            int
	best         time.Duration // per op
}

// Start starts (or restarts) the stopwatch.
func (s *Stopwatch) Start() {
	s.start = time.Now()
	s.chunk, s.n, s.best = s.start, 0, 0
}

// Tick records one completed operation.
func (s *Stopwatch) Tick() {
	s.n++
	if s.n%ChunkOps != 0 {
		return
	}
	now := time.Now()
	if d := now.Sub(s.chunk) / ChunkOps; s.best == 0 || d < s.best {
		s.best = d
	}
	s.chunk = now
}

// Elapsed returns the time since Start.
func (s *Stopwatch) Elapsed() time.Duration { return time.Since(s.start) }

// Best returns the per-operation time of the fastest full chunk, or the
// mean so far if no chunk completed.
func (s *Stopwatch) Best() time.Duration {
	if s.best == 0 && s.n > 0 {
		return s.Elapsed() / time.Duration(s.n)
	}
	return s.best
}

// PerSecond returns messages (or round trips) per second.
func (r Result) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Count) / r.Elapsed.Seconds()
}

// PerOp returns the mean time per message, or per round trip (the RTT).
func (r Result) PerOp() time.Duration {
	if r.Count == 0 {
		return 0
	}
	return r.Elapsed / time.Duration(r.Count)
}

func (r Result) String() string {
	if r.Kind == "pingpong" {
		return fmt.Sprintf("%s pingpong %dB: %d round trips in %v, RTT mean %v, best chunk %v", r.Name, r.Size, r.Count, r.Elapsed, r.PerOp(), r.Best)
	}
	return fmt.Sprintf("%s throughput %dB: %d msgs in %v, %.3g msg/s", r.Name, r.Size, r.Count, r.Elapsed, r.PerSecond())
}

// Transport names a byte channel between two processes.
type Transport string

const (
	// Pipe: os.Pipe; the sender writes each message with its own write(2).
	Pipe Transport = "pipe"
	// PipeBuffered: os.Pipe; the sender batches messages through a 64 KiB
	// bufio.Writer (stream throughput, messages lose their boundaries).
	PipeBuffered Transport = "pipe-buffered"
	// Unix: an AF_UNIX SOCK_STREAM socketpair, one write(2) per message.
	Unix Transport = "unix"
	// UnixBuffered: the socketpair through a 64 KiB bufio.Writer.
	UnixBuffered Transport = "unix-buffered"
	// Msgq: a System V message queue, one msgsnd(2) per message.
	Msgq Transport = "msgq"
)

// Transports lists every transport, for tables.
var Transports = []Transport{Pipe, PipeBuffered, Unix, UnixBuffered, Msgq}

const (
	envRole = "SHMKIT_BASELINE_PEER"
	envArgs = "SHMKIT_BASELINE_ARGS"
	argSep  = "\x1f"
)

// builtinPeers are the peers of this package's own measurements; they run
// from init. Peers registered with RegisterPeer run from RunPeer.
var builtinPeers = map[string]bool{
	"stream-sink": true, "stream-echo": true, "msgq-sink": true,
	"msgq-echo": true, "spin-echo": true, "futex-echo": true,
}

func peerArgs() []string {
	if a := os.Getenv(envArgs); a != "" {
		return strings.Split(a, argSep)
	}
	return nil
}

func init() {
	role := os.Getenv(envRole)
	if !builtinPeers[role] {
		return
	}
	exitPeer(role, runPeer(role, peerArgs()))
}

func exitPeer(role string, err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "baseline peer %s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

var (
	peersMu sync.Mutex
	peers   = map[string]func(args []string) error{}
)

// RegisterPeer registers fn as the peer side named name, for measurements
// of other mechanisms (a shmring or shmqueue benchmark in cmd/shmbench,
// say). The peer gets the args given to StartPeer and its files as fd 3,
// 4, ... (os.NewFile). Register at package level, so the child has it too.
func RegisterPeer(name string, fn func(args []string) error) {
	peersMu.Lock()
	defer peersMu.Unlock()
	peers[name] = fn
}

// RunPeer runs the registered peer this process was started as, if any,
// and exits; otherwise it returns at once. Call it first thing in main (or
// TestMain) of a binary that uses StartPeer. This package's own peers need
// no call: they run from its init.
func RunPeer() {
	role := os.Getenv(envRole)
	if role == "" {
		return
	}
	peersMu.Lock()
	fn := peers[role]
	peersMu.Unlock()
	if fn == nil {
		exitPeer(role, fmt.Errorf("no peer registered as %q", role))
	}
	exitPeer(role, fn(peerArgs()))
}

// Peer is a child process started by StartPeer.
type Peer struct{ p *peer }

// StartPeer re-executes the running binary as the peer registered under
// name, with files as its fd 3, 4, ... and args. The child dies with the
// parent (PDEATHSIG). Its stdout and stderr go to this process's stderr.
func StartPeer(name string, files []*os.File, args ...string) (*Peer, error) {
	p, err := startPeer(name, files, args...)
	if err != nil {
		return nil, err
	}
	return &Peer{p}, nil
}

// Wait waits up to timeout for the peer to exit and returns its failure,
// if any; a peer still running after timeout is killed.
func (p *Peer) Wait(timeout time.Duration) error { return p.p.wait(timeout) }

// Kill SIGKILLs the peer and reaps it.
func (p *Peer) Kill() { p.p.Kill() }

// Pid returns the peer's process ID.
func (p *Peer) Pid() int { return p.p.Pid() }

// peer is a started child process, run by testproc (the one child-process
// harness: start, PDEATHSIG, wait with timeout, kill).
type peer struct{ *testproc.Proc }

// startPeer re-executes this binary as the peer role with files as fd 3, 4, ...
func startPeer(role string, files []*os.File, args ...string) (*peer, error) {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envRole+"="+role, envArgs+"="+strings.Join(args, argSep))
	cmd.ExtraFiles = files
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	p, err := testproc.Launch(cmd)
	if err != nil {
		return nil, fmt.Errorf("baseline: start %s peer: %w", role, err)
	}
	return &peer{p}, nil
}

// wait waits for the peer to exit (killing it after timeout).
func (p *peer) wait(timeout time.Duration) error {
	err := p.Wait(timeout)
	switch {
	case errors.Is(err, testproc.ErrTimeout):
		return errors.New("baseline: peer timed out (killed)")
	case err != nil:
		return fmt.Errorf("baseline: peer failed: %w", err)
	}
	return nil
}

const peerTimeout = 5 * time.Minute

// Throughput sends count messages of size bytes (size >= 1) over tr to a
// child that reads them all and acknowledges; it returns the time from the
// first send to the acknowledgement.
func Throughput(tr Transport, count, size int) (Result, error) {
	if count < 1 || size < 1 {
		return Result{}, fmt.Errorf("baseline: count %d and size %d must be positive", count, size)
	}
	res := Result{Name: string(tr), Kind: "throughput", Count: count, Size: size}
	var err error
	switch tr {
	case Pipe, PipeBuffered, Unix, UnixBuffered:
		res.Elapsed, err = streamThroughput(tr, count, size)
	case Msgq:
		res.Elapsed, err = msgqThroughput(count, size)
	default:
		err = fmt.Errorf("baseline: unknown transport %q", tr)
	}
	return res, err
}

// PingPong bounces one message of size bytes over tr count times between
// this process and a child echoing it, and returns the total time (PerOp
// is the round-trip time). Buffered transports behave as their unbuffered
// counterparts here (every message is flushed).
func PingPong(tr Transport, count, size int) (Result, error) {
	if count < 1 || size < 1 {
		return Result{}, fmt.Errorf("baseline: count %d and size %d must be positive", count, size)
	}
	res := Result{Name: string(tr), Kind: "pingpong", Count: count, Size: size}
	var err error
	switch tr {
	case Pipe, PipeBuffered, Unix, UnixBuffered:
		res.Elapsed, res.Best, err = streamPingPong(tr, count, size)
	case Msgq:
		res.Elapsed, res.Best, err = msgqPingPong(count, size)
	default:
		err = fmt.Errorf("baseline: unknown transport %q", tr)
	}
	return res, err
}

// channel is a bidirectional byte channel to the peer: what the parent
// writes to and reads from, and the files handed to the child.
type channel struct {
	w, r  io.Writer
	rd    io.Reader
	child []*os.File
	close func()
}

func newChannel(tr Transport) (*channel, error) {
	switch tr {
	case Pipe, PipeBuffered:
		// Parent -> child on one pipe, child -> parent on another.
		r1, w1, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		r2, w2, err := os.Pipe()
		if err != nil {
			r1.Close()
			w1.Close()
			return nil, err
		}
		return &channel{w: w1, rd: r2, child: []*os.File{r1, w2}, close: func() {
			r1.Close()
			w1.Close()
			r2.Close()
			w2.Close()
		}}, nil
	case Unix, UnixBuffered:
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("baseline: socketpair: %w", err)
		}
		a, b := os.NewFile(uintptr(fds[0]), "sock-parent"), os.NewFile(uintptr(fds[1]), "sock-child")
		// The child reads and writes the same socket: pass it twice.
		return &channel{w: a, rd: a, child: []*os.File{b, b}, close: func() {
			a.Close()
			b.Close()
		}}, nil
	}
	return nil, fmt.Errorf("baseline: unknown transport %q", tr)
}

func buffered(tr Transport) bool { return tr == PipeBuffered || tr == UnixBuffered }

func streamThroughput(tr Transport, count, size int) (time.Duration, error) {
	ch, err := newChannel(tr)
	if err != nil {
		return 0, err
	}
	defer ch.close()
	p, err := startPeer("stream-sink", ch.child, strconv.Itoa(count), strconv.Itoa(size))
	if err != nil {
		return 0, err
	}
	var b [1]byte
	if _, err := io.ReadFull(ch.rd, b[:]); err != nil {
		p.Kill()
		return 0, fmt.Errorf("baseline: peer ready: %w", err)
	}
	msg := make([]byte, size)
	w := ch.w
	var bw *bufio.Writer
	if buffered(tr) {
		bw = bufio.NewWriterSize(ch.w, 64<<10)
		w = bw
	}
	start := time.Now()
	for i := range count {
		msg[0] = byte(i)
		if _, err := w.Write(msg); err != nil {
			p.Kill()
			return 0, fmt.Errorf("baseline: write: %w", err)
		}
	}
	if bw != nil {
		if err := bw.Flush(); err != nil {
			p.Kill()
			return 0, err
		}
	}
	if _, err := io.ReadFull(ch.rd, b[:]); err != nil {
		p.Kill()
		return 0, fmt.Errorf("baseline: peer ack: %w", err)
	}
	elapsed := time.Since(start)
	return elapsed, p.wait(peerTimeout)
}

func streamPingPong(tr Transport, count, size int) (time.Duration, time.Duration, error) {
	ch, err := newChannel(tr)
	if err != nil {
		return 0, 0, err
	}
	defer ch.close()
	p, err := startPeer("stream-echo", ch.child, strconv.Itoa(count), strconv.Itoa(size))
	if err != nil {
		return 0, 0, err
	}
	msg := make([]byte, size)
	if _, err := io.ReadFull(ch.rd, msg[:1]); err != nil {
		p.Kill()
		return 0, 0, fmt.Errorf("baseline: peer ready: %w", err)
	}
	var sw Stopwatch
	sw.Start()
	for i := range count {
		msg[0] = byte(i)
		if _, err := ch.w.Write(msg); err != nil {
			p.Kill()
			return 0, 0, err
		}
		if _, err := io.ReadFull(ch.rd, msg); err != nil {
			p.Kill()
			return 0, 0, err
		}
		if msg[0] != byte(i) {
			p.Kill()
			return 0, 0, fmt.Errorf("baseline: echo %d came back as %d", byte(i), msg[0])
		}
		sw.Tick()
	}
	elapsed := sw.Elapsed()
	return elapsed, sw.Best(), p.wait(peerTimeout)
}

// ---- System V message queue ----

// msgq creates a private message queue (IPC_PRIVATE: no key to collide
// with) removed by the returned func.
func msgq() (int, func(), error) {
	id, err := sysv.Msgget(sysv.IPC_PRIVATE, sysv.IPC_CREAT|0o600)
	if err != nil {
		return 0, nil, fmt.Errorf("baseline: msgget: %w", err)
	}
	return id, func() { _ = sysv.MsgctlRmid(id) }, nil
}

// msgSend and msgRecv retry on EINTR (SysV calls are never restarted).
func msgSend(id int, buf []byte) error {
	for {
		err := sysv.Msgsnd(id, buf, 0)
		if err != syscall.EINTR {
			return err
		}
	}
}

func msgRecv(id int, buf []byte, typ int64) (int, error) {
	for {
		n, err := sysv.Msgrcv(id, buf, typ, 0)
		if err != syscall.EINTR {
			return n, err
		}
	}
}

func setType(buf []byte, typ int64) {
	for i := range 8 {
		buf[i] = byte(uint64(typ) >> (8 * i))
	}
}

// Message types: parent -> child 1, child -> parent 2.
const (
	typeToChild  = 1
	typeToParent = 2
)

func msgqThroughput(count, size int) (time.Duration, error) {
	id, rm, err := msgq()
	if err != nil {
		return 0, err
	}
	defer rm()
	p, err := startPeer("msgq-sink", nil, strconv.Itoa(id), strconv.Itoa(count), strconv.Itoa(size))
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 8+size)
	if _, err := msgRecv(id, buf, typeToParent); err != nil {
		p.Kill()
		return 0, fmt.Errorf("baseline: peer ready: %w", err)
	}
	setType(buf, typeToChild)
	start := time.Now()
	for range count {
		if err := msgSend(id, buf); err != nil {
			p.Kill()
			return 0, fmt.Errorf("baseline: msgsnd: %w", err)
		}
	}
	if _, err := msgRecv(id, buf, typeToParent); err != nil {
		p.Kill()
		return 0, fmt.Errorf("baseline: peer ack: %w", err)
	}
	elapsed := time.Since(start)
	return elapsed, p.wait(peerTimeout)
}

func msgqPingPong(count, size int) (time.Duration, time.Duration, error) {
	id, rm, err := msgq()
	if err != nil {
		return 0, 0, err
	}
	defer rm()
	p, err := startPeer("msgq-echo", nil, strconv.Itoa(id), strconv.Itoa(count), strconv.Itoa(size))
	if err != nil {
		return 0, 0, err
	}
	buf := make([]byte, 8+size)
	if _, err := msgRecv(id, buf, typeToParent); err != nil {
		p.Kill()
		return 0, 0, fmt.Errorf("baseline: peer ready: %w", err)
	}
	var sw Stopwatch
	sw.Start()
	for range count {
		setType(buf, typeToChild)
		if err := msgSend(id, buf); err != nil {
			p.Kill()
			return 0, 0, err
		}
		if _, err := msgRecv(id, buf, typeToParent); err != nil {
			p.Kill()
			return 0, 0, err
		}
		sw.Tick()
	}
	elapsed := sw.Elapsed()
	return elapsed, sw.Best(), p.wait(peerTimeout)
}
