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
	"fmt"
	"time"
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

// ChunkOps is the chunk size of Stopwatch (and the full block of Blocks).
const ChunkOps = 1000

// Blocks sums timed blocks of operations: the mean over all of them, and
// the fastest full block (ChunkOps operations), which on a loaded machine
// estimates the cost when both processes had a CPU. Stopwatch keeps one;
// a caller that times its own blocks adds them to one.
type Blocks struct {
	total time.Duration
	ops   int
	best  time.Duration // per op, in the fastest full block
}

// Add records a block of ops operations that took d.
func (b *Blocks) Add(d time.Duration, ops int) {
	b.total += d
	b.ops += ops
	if ops != ChunkOps {
		return
	}
	if per := d / ChunkOps; b.best == 0 || per < b.best {
		b.best = per
	}
}

// Mean returns the time per operation over every block added (0 for none).
func (b *Blocks) Mean() time.Duration {
	if b.ops == 0 {
		return 0
	}
	return b.total / time.Duration(b.ops)
}

// Best returns the per-operation time of the fastest full block, or the
// mean if no block was full.
func (b *Blocks) Best() time.Duration {
	if b.best == 0 {
		return b.Mean()
	}
	return b.best
}

// Stopwatch times a loop of operations and also keeps the fastest chunk of
// ChunkOps consecutive operations (see Blocks), so benchmarks on a busy
// machine can report both the mean and an estimate of the uncontended cost.
type Stopwatch struct {
	start, chunk time.Time
	n            int
	chunks       Blocks
}

// Start starts (or restarts) the stopwatch.
func (s *Stopwatch) Start() {
	s.start = time.Now()
	s.chunk, s.n, s.chunks = s.start, 0, Blocks{}
}

// Tick records one completed operation.
func (s *Stopwatch) Tick() {
	s.n++
	if s.n%ChunkOps != 0 {
		return
	}
	now := time.Now()
	s.chunks.Add(now.Sub(s.chunk), ChunkOps)
	s.chunk = now
}

// Elapsed returns the time since Start.
func (s *Stopwatch) Elapsed() time.Duration { return time.Since(s.start) }

// Best returns the per-operation time of the fastest full chunk, or the
// mean so far if no chunk completed.
func (s *Stopwatch) Best() time.Duration {
	if s.n > 0 && s.chunks.best == 0 {
		return s.Elapsed() / time.Duration(s.n)
	}
	return s.chunks.best
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
