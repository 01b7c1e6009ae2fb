package shmqueue

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/shmkit/shmkit/internal/mem"
	"github.com/shmkit/shmkit/internal/proc"
	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/segment"
)

// Linearizability of TryPush/TryPop, checked by porcupine over histories
// recorded by several real processes.
//
// Each client process does a random mix of TryPush (unique values) and
// TryPop on a queue of capacity 2, and records for every call its
// CLOCK_MONOTONIC call and return times (one clock for all processes) and
// its outcome into its own part of a shared history log. The parent
// assembles the operations and asks porcupine whether some order of them,
// consistent with real time, is a legal history of a FIFO queue of that
// capacity in which TryPush says ErrFull only when the queue is full and
// TryPop says ErrEmpty only when it is empty.
//
// In the "stopped" runs the parent also SIGSTOPs clients and, whenever it
// caught one inside an operation (futex: a lane announcing a claim that the
// cursor shows taken and the slot shows unfinished; SysV: holding the
// semaphore lock), keeps it stopped for linStopHold while the others go
// on. A Try operation of another client that then answered "full" or
// "empty" because of the stopped claim would make the history
// non-linearizable.

// linItem is what the clients push: a value and a payload big enough
// (64 KiB) that copying it in and out of a slot takes a while, so that a
// SIGSTOP sent while a client is inside an operation often lands between
// its claim and its publication or release.
type linItem struct {
	V   uint64
	Pad [8191]uint64
}

// histLog is the shared history log: word 0 is the stop flag, words
// 1..linHeader-1 say which client is inside an operation now (for the
// parent's SIGSTOPs), then one area per client: a count of complete
// records, then records of linRecWords words {call, return, code, value}.
type histLog struct {
	seg   *segment.Segment
	words []atomic.Uint64
	ops   int // records per client
}

const (
	linRecWords = 4
	linHeader   = 8
	linMaxProcs = linHeader - 1

	codePushOK    = 1
	codePushFull  = 2
	codePopOK     = 3
	codePopEmpty  = 4
	codePushStall = 5 // ErrPeerStalled: no effect
	codePopStall  = 6
)

func (h *histLog) stop() *atomic.Uint64 { return &h.words[0] }

func (h *histLog) inOp(c int) *atomic.Uint64 { return &h.words[1+c] }

func (h *histLog) area(c int) []atomic.Uint64 {
	n := 1 + linRecWords*h.ops
	return h.words[linHeader+c*n : linHeader+(c+1)*n]
}

func histLogSize(clients, ops int) int { return (linHeader + clients*(1+linRecWords*ops)) * 8 }

func createHistLog(t *testing.T, clients, ops int) (string, *histLog) {
	t.Helper()
	spec := "posix:/" + testproc.UniqueName("hist")
	seg, err := segment.Create(spec, histLogSize(clients, ops))
	require.NoError(t, err)
	t.Cleanup(func() { _ = seg.Close(); _ = segment.Remove(spec) })
	h, err := histLogOf(seg, ops)
	require.NoError(t, err)
	return spec, h
}

func histLogOf(seg *segment.Segment, ops int) (*histLog, error) {
	b := seg.Bytes()
	words, err := mem.Slice[atomic.Uint64](b, len(b)/8)
	if err != nil {
		return nil, err
	}
	return &histLog{seg: seg, words: words, ops: ops}, nil
}

// linClient args: queue spec, log spec, client index, ops, seed.
var linClient = testproc.Register("shmqueue-lin-client", func(args []string) error {
	if len(args) != 5 {
		return fmt.Errorf("want 5 args, got %q", args)
	}
	c, _ := strconv.Atoi(args[2])
	ops, _ := strconv.Atoi(args[3])
	seed, _ := strconv.ParseUint(args[4], 10, 64)
	q, err := Open[linItem](args[0])
	if err != nil {
		return err
	}
	defer q.Close()
	seg, err := segment.Open(args[1])
	if err != nil {
		return err
	}
	h, err := histLogOf(seg, ops)
	if err != nil {
		return err
	}
	area := h.area(c)
	rng := rand.New(rand.NewPCG(seed, uint64(c)))
	fmt.Println("go")
	for i := 0; i < ops && h.stop().Load() == 0; i++ {
		var code, val uint64
		push := rng.IntN(2) == 0
		h.inOp(c).Store(1)
		call := monoNow() // CLOCK_MONOTONIC: one clock for every process
		if push {
			val = uint64(c+1)<<32 | uint64(i)
			err = q.TryPush(linItem{V: val})
			code = codePushOK
			switch {
			case errors.Is(err, ErrFull):
				code = codePushFull
			case errors.Is(err, ErrPeerStalled):
				code = codePushStall
			case err != nil:
				return err
			}
		} else {
			var it linItem
			it, err = q.TryPop()
			val, code = it.V, codePopOK
			switch {
			case errors.Is(err, ErrEmpty):
				code = codePopEmpty
			case errors.Is(err, ErrPeerStalled):
				code = codePopStall
			case err != nil:
				return err
			}
		}
		ret := monoNow()
		h.inOp(c).Store(0)
		r := area[1+linRecWords*i:]
		r[0].Store(uint64(call))
		r[1].Store(uint64(ret))
		r[2].Store(code)
		r[3].Store(val)
		area[0].Store(uint64(i + 1))
		// Vary the interleavings: now and then let the others run; after
		// full or empty, often pause, so that a client waiting for a
		// stopped peer does not fill its log with the same answer.
		switch {
		case (code == codePushFull || code == codePopEmpty) && rng.IntN(2) == 0:
			time.Sleep(20 * time.Microsecond)
		case rng.IntN(8) == 0:
			runtime.Gosched()
		}
	}
	return nil
})

// The sequential model: a FIFO queue of capacity linCap.
type linState struct {
	n int
	v [4]uint64
}

type linIn struct {
	push bool
	val  uint64
}

type linOut struct {
	code uint64
	val  uint64
}

func linModel(capacity int) porcupine.Model {
	return porcupine.Model{
		Init: func() any { return linState{} },
		Step: func(st, in, out any) (bool, any) {
			s, o := st.(linState), out.(linOut)
			switch o.code {
			case codePushOK:
				if s.n == capacity {
					return false, s
				}
				s.v[s.n] = in.(linIn).val
				s.n++
				return true, s
			case codePushFull:
				return s.n == capacity, s
			case codePopOK:
				if s.n == 0 || s.v[0] != o.val {
					return false, s
				}
				copy(s.v[:], s.v[1:s.n])
				s.n--
				s.v[s.n] = 0
				return true, s
			case codePopEmpty:
				return s.n == 0, s
			}
			return true, s // stalled: no effect
		},
		Equal: func(a, b any) bool { return a.(linState) == b.(linState) },
		DescribeOperation: func(in, out any) string {
			i, o := in.(linIn), out.(linOut)
			switch o.code {
			case codePushOK:
				return fmt.Sprintf("push(%#x)", i.val)
			case codePushFull:
				return fmt.Sprintf("push(%#x) full", i.val)
			case codePopOK:
				return fmt.Sprintf("pop -> %#x", o.val)
			case codePopEmpty:
				return "pop empty"
			}
			return "stalled"
		},
		DescribeState: func(st any) string {
			s := st.(linState)
			return fmt.Sprintf("%x", s.v[:s.n])
		},
	}
}

// total is the number of records the clients have completed so far.
func (h *histLog) total(clients int) int {
	n := 0
	for c := range clients {
		n += int(h.area(c)[0].Load())
	}
	return n
}

// history assembles the porcupine operations of every client.
func (h *histLog) history(clients int) []porcupine.Operation {
	var ops []porcupine.Operation
	for c := range clients {
		area := h.area(c)
		n := min(int(area[0].Load()), h.ops)
		for i := range n {
			r := area[1+linRecWords*i:]
			code := r[2].Load()
			val := r[3].Load()
			in := linIn{push: code == codePushOK || code == codePushFull || code == codePushStall}
			out := linOut{code: code}
			if in.push {
				in.val = val
			} else {
				out.val = val
			}
			ops = append(ops, porcupine.Operation{ClientId: c, Input: in, Output: out,
				Call: int64(r[0].Load()), Return: int64(r[1].Load())})
		}
	}
	return ops
}

// linStopHold is how long a client caught inside an operation stays
// stopped: long enough for every other client to run into its claim,
// well below TryStallLimit.
const linStopHold = 100 * time.Millisecond

func TestTryLinearizable(t *testing.T) {
	ops := 1000
	if v, err := strconv.Atoi(os.Getenv("SHMKIT_LIN_OPS")); err == nil && v > 0 {
		ops = v
	}
	for _, b := range backends {
		for _, stopped := range []bool{false, true} {
			name := b.String()
			if stopped {
				name += "-stopped"
			}
			n := ops
			if stopped {
				n *= 4 // a log bound: the parent stops the clients
			}
			t.Run(name, func(t *testing.T) { runLinearizable(t, b, 2, 4, n, stopped) })
		}
	}
}

func runLinearizable(t *testing.T, b Backend, capacity, clients, ops int, stop bool) {
	require.LessOrEqual(t, clients, linMaxProcs)
	q, spec := create[linItem](t, capacity, WithBackend(b))
	lspec, h := createHistLog(t, clients, ops)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	procs := make([]*testproc.Proc, clients)
	for c := range clients {
		procs[c] = linClient.Start(t, spec, lspec, strconv.Itoa(c), strconv.Itoa(ops), strconv.FormatUint(seed, 10))
	}
	for _, p := range procs {
		require.True(t, p.WaitOutput("go\n", time.Minute), p.Output())
	}
	caught, tries := 0, 0
	if stop {
		// Clients run until told to stop (or their log is full).
		rng := rand.New(rand.NewPCG(seed, 99))
		deadline := time.Now().Add(20 * time.Second)
		// Stop after two catches, or once the history is as long as an
		// unstopped run's (porcupine's time grows with it).
		for caught < 2 && (caught == 0 || h.total(clients) < ops) && time.Now().Before(deadline) {
			c := rng.IntN(clients)
			p := procs[c]
			select {
			case <-p.Done():
				t.Fatalf("client exited before the stops were done (log full?): %v\n%s", p.Wait(0), p.Output())
			default:
			}
			// Stop it while it says it is inside an operation.
			for i := 0; h.inOp(c).Load() == 0 && i < 1<<20; i++ {
			}
			tries++
			p.Signal(syscall.SIGSTOP)
			if !waitStopped(p.Pid()) {
				p.Signal(syscall.SIGCONT)
				continue
			}
			if midOperation(t, q, p.Pid()) {
				caught++
				time.Sleep(linStopHold)
			}
			p.Signal(syscall.SIGCONT)
			time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
		}
		h.stop().Store(1)
		require.NotZero(t, caught, "no client caught inside an operation in %d tries: the run proved nothing", tries)
	}
	for _, p := range procs {
		require.NoError(t, p.Wait(2*time.Minute), p.Output())
	}
	hist := h.history(clients)
	counts := map[uint64]int{}
	for _, op := range hist {
		counts[op.Output.(linOut).code]++
	}
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(linModel(capacity), hist, time.Minute)
	t.Logf("%s: %d ops (push ok %d, full %d, stalled %d; pop ok %d, empty %d, stalled %d), %d clients caught inside an operation in %d stops; checked in %v: %s",
		b, len(hist), counts[codePushOK], counts[codePushFull], counts[codePushStall], counts[codePopOK], counts[codePopEmpty], counts[codePopStall],
		caught, tries, time.Since(start), res)
	if res != porcupine.Ok {
		if dir := os.Getenv("SHMKIT_LIN_VIS"); dir != "" {
			f, err := os.CreateTemp(dir, "lin-*.html")
			if err == nil {
				_ = porcupine.Visualize(linModel(capacity), info, f)
				_ = f.Close()
				t.Logf("visualization: %s", f.Name())
			}
		}
		t.Fatalf("history of %d operations is %s for a FIFO queue of capacity %d", len(hist), res, capacity)
	}
}

// waitStopped waits until process pid is in the stopped state.
func waitStopped(pid int) bool {
	for range 2000 {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return false
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) && (s[i+2] == 'T' || s[i+2] == 't') {
			return true
		}
		time.Sleep(50 * time.Microsecond)
	}
	return false
}

// midOperation reports whether the stopped process pid is inside an
// operation that other processes must wait out.
func midOperation(t *testing.T, q *Queue[linItem], pid int) bool {
	switch fq := q.b.(type) {
	case *futexQueue[linItem]:
		for i := range fq.members {
			m := &fq.members[i]
			if int(proc.FromWord(m.owner.Load()).PID) != pid {
				continue
			}
			for j := range m.lanes {
				w := m.lanes[j].Load()
				if w&laneActive == 0 {
					continue
				}
				p := w & lanePosMask
				seq := fq.slots[p&fq.mask].seq.Load()
				if w&lanePop != 0 {
					if fq.ctl.deq.Load() > p && seq&^holeBit == p+1 {
						return true
					}
				} else if fq.ctl.enq.Load()&^closedBit > p && seq == p {
					return true
				}
			}
		}
	case *sysvQueue[linItem]:
		v, err := fq.sem.GetVal(semLock)
		require.NoError(t, err)
		if v == 0 {
			// Somebody holds the lock: is it the stopped process? The
			// kernel records the last semop's pid (GETPID = 11).
			r, _, errno := unix.Syscall6(unix.SYS_SEMCTL, uintptr(fq.sem.ID()), semLock, 11, 0, 0, 0)
			return errno == 0 && int(r) == pid
		}
	}
	return false
}
