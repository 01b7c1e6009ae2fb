package fuzz_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	"github.com/shmkit/shmkit/shmmap"
)

// Hostile peers
//
// A reader must survive a peer that writes garbage into the live segment:
// it may return ErrCorrupt (or any sentinel) or odd values, but it must not
// panic, index out of range, fault, or spin forever. Each test below starts
// the reader's structure, then a scribbler child that maps the same
// segment and writes into every part of it (header, type descriptions,
// indices, lengths, sequence words, slot data) until it is killed, while the
// reader does a fixed number of operations, each under a context deadline.

// scribbler maps args[0] and corrupts it forever. It writes "go\n" to
// stdout once mapped, and counts its writes in the progress segment
// args[1] so the test can tell that reads really overlapped scribbling.
// args[2] seeds its choices; args[3:] are the structure's regions as
// "off:size", so that writes land where the structure lives rather than in
// the page padding after it: a third go to the header and type
// descriptions, a third to the first 512 bytes of a region (control
// blocks: cursors, sequence words, lock words), a third anywhere in a region.
var scribbler = testproc.Register("fuzz-scribbler", func(args []string) error {
	seed, err := strconv.ParseUint(args[2], 10, 64)
	if err != nil {
		return err
	}
	type span struct{ off, size int }
	var regions []span
	for _, a := range args[3:] {
		var r span
		if _, err := fmt.Sscanf(a, "%d:%d", &r.off, &r.size); err != nil {
			return err
		}
		if r.size > 0 {
			regions = append(regions, r)
		}
	}
	seg, err := segment.Open(args[0])
	if err != nil {
		return err
	}
	progress, err := layout.OpenValue[atomic.Uint64](args[1])
	if err != nil {
		return err
	}
	b := seg.Bytes()
	snapshot := append([]byte(nil), b...)
	headerEnd := min(len(b), layout.HeaderSize+512)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	fmt.Println("go")
	le := binary.LittleEndian
	// Values that sit on the edges of index arithmetic.
	edges := []uint64{0, 1, 2, 3, 7, 8, 15, 16, 17, 63, 64, 65, 255, 256, 4095, 4096,
		1<<31 - 1, 1 << 31, 1<<32 - 1, 1 << 32, 1<<63 - 1, 1 << 63, ^uint64(0), ^uint64(0) - 1}
	for n := uint64(1); ; n++ {
		off := rng.IntN(headerEnd)
		if len(regions) > 0 {
			r := regions[rng.IntN(len(regions))]
			switch rng.IntN(3) {
			case 0:
				off = r.off + rng.IntN(min(r.size, 512))
			case 1:
				off = r.off + rng.IntN(r.size)
			}
		}
		switch p := rng.IntN(100); {
		case p < 30:
			b[off] = byte(rng.Uint32())
		case p < 45:
			if off = off &^ 7; off+8 <= len(b) {
				le.PutUint64(b[off:], rng.Uint64())
			}
		case p < 75:
			v := edges[rng.IntN(len(edges))]
			if rng.IntN(2) == 0 {
				v = uint64(rng.IntN(1024))
			}
			if rng.IntN(4) == 0 {
				// Near what was there: a cursor nudged forward or back.
				if o := off &^ 7; o+8 <= len(b) {
					v = le.Uint64(snapshot[o:]) + uint64(rng.IntN(9)) - 4
				}
			}
			if off = off &^ 7; off+8 <= len(b) && rng.IntN(2) == 0 {
				le.PutUint64(b[off:], v)
			} else if off = off &^ 3; off+4 <= len(b) {
				le.PutUint32(b[off:], uint32(v))
			}
		case p < 97:
			// Heal a span from the snapshot, so the reader gets past the
			// first check often enough to meet the later ones.
			end := min(len(b), off+1+rng.IntN(256))
			copy(b[off:end], snapshot[off:end])
		default:
			copy(b[:headerEnd], snapshot[:headerEnd])
		}
		progress.Ptr().Store(n)
		if n%64 == 0 {
			runtime.Gosched()
		}
	}
})

// hostileLimits bound a hostile run: per operation (the context deadline
// each op gets) and for the whole run.
const (
	hostileOpDeadline = 50 * time.Millisecond
	hostileRunLimit   = 60 * time.Second
)

// hostileOK are the errors a reader may return under a scribbler.
var hostileOK = append([]error{
	layout.ErrClosed, layout.ErrFull, layout.ErrEmpty, layout.ErrRoleTaken,
	layout.ErrOwnerDead, layout.ErrNotRecoverable, layout.ErrLagged, context.DeadlineExceeded,
	shmmap.ErrLockTimeout,
}, openSentinels...)

// runHostile scribbles over the segment at spec while op runs ops times
// (each with its own deadline), and fails the test on a panic, a fault, an
// op that overruns its deadline by more than a second, an error that wraps
// no known sentinel, or a run that does not finish in hostileRunLimit.
// op gets the iteration number; it reports errors, it must not t.Fatal.
func runHostile(t *testing.T, spec string, seg *layout.Segment, ops int, op func(ctx context.Context, i int) error) {
	t.Helper()
	progressSpec := "posix:/" + testproc.UniqueName("progress")
	progress, err := layout.CreateValue[atomic.Uint64](progressSpec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = progress.Close(); _ = segment.Remove(progressSpec) })

	seed := rand.Uint64()
	if v := os.Getenv("SHMKIT_HOSTILE_SEED"); v != "" { // reproduce a logged run
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{spec, progressSpec, strconv.FormatUint(seed, 10)}
	for i := range seg.NumRegions() {
		r := seg.Header().Regions[i]
		args = append(args, fmt.Sprintf("%d:%d", r.Off, r.Size))
	}
	cmd := scribbler.Command(t, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := testproc.StartCmd(t, cmd)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "go\n" {
		p.Kill()
		t.Fatalf("scribbler did not start: %q %v\n%s", line, err, p.Output())
	}
	before := progress.Ptr().Load()

	type result struct {
		panicked any
		stack    []byte
		errs     map[string]int
		bad      []error
		slowest  time.Duration
		slowAt   int // the op number of the slowest op
		done     int
	}
	resc := make(chan result, 1)
	var doneOps atomic.Int64
	go func() {
		res := result{errs: map[string]int{}}
		defer func() {
			if r := recover(); r != nil {
				res.panicked, res.stack = r, debug.Stack()
			}
			resc <- res
		}()
		// A wild pointer into (or past) the mapping becomes a panic here
		// instead of killing the test binary, so it is reported as such.
		debug.SetPanicOnFault(true)
		for i := range ops {
			ctx, cancel := context.WithTimeout(context.Background(), hostileOpDeadline)
			start := time.Now()
			err := op(ctx, i)
			took := time.Since(start)
			cancel()
			if took > res.slowest {
				res.slowest, res.slowAt = took, i
			}
			if err != nil {
				res.errs[sentinelName(err)]++
				if !wrapsAny(err, hostileOK) && len(res.bad) < 5 {
					res.bad = append(res.bad, err)
				}
			}
			res.done++
			doneOps.Store(int64(res.done))
		}
	}()

	var res result
	select {
	case res = <-resc:
	case <-time.After(hostileRunLimit):
		buf := make([]byte, 1<<20)
		t.Fatalf("reader did %d of %d ops in %v: it spins or blocks\n%s", doneOps.Load(), ops, hostileRunLimit, buf[:runtime.Stack(buf, true)])
	}
	scribbles := progress.Ptr().Load() - before
	p.Kill()
	if res.panicked != nil {
		t.Fatalf("reader panicked after %d ops: %v\n%s", res.done, res.panicked, res.stack)
	}
	t.Logf("seed %d: %d ops against %d scribbles; slowest op #%d took %v; outcomes %v", seed, res.done, scribbles, res.slowAt, res.slowest, res.errs)
	for _, err := range res.bad {
		t.Errorf("error wraps no shmkit sentinel: %v", err)
	}
	if res.slowest > hostileOpDeadline+time.Second {
		t.Errorf("op #%d took %v with a %v deadline", res.slowAt, res.slowest, hostileOpDeadline)
	}
	if scribbles == 0 {
		t.Errorf("scribbler made no writes while the reader ran: the test proved nothing")
	}
}

func wrapsAny(err error, targets []error) bool {
	for _, s := range targets {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// sentinelName buckets an error for the outcome summary.
func sentinelName(err error) string {
	for _, s := range hostileOK {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return "other"
}

// hostileSpec returns a fresh POSIX segment name removed at cleanup.
func hostileSpec(t *testing.T, what string) string {
	spec := "posix:/" + testproc.UniqueName(what)
	t.Cleanup(func() { _ = segment.Remove(spec) })
	return spec
}

// hostileOps is how many reader operations each hostile test does; more
// under SHMKIT_SOAK=1.
func hostileOps(n int) int {
	if os.Getenv("SHMKIT_SOAK") != "" {
		return 50 * n
	}
	return n
}

// TestHostileLayoutOpen attaches, again and again, to a Value segment that
// a peer is scribbling over: every attach validates a private copy of the
// header, so it fails with a sentinel or yields a usable value.
func TestHostileLayoutOpen(t *testing.T) {
	spec := hostileSpec(t, "hostile-value")
	v, err := layout.CreateValue[seedOrder](spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	v.Ptr().ID = 42
	var opened atomic.Int64
	runHostile(t, spec, v.Segment(), hostileOps(3000), func(ctx context.Context, i int) error {
		if i%2 == 0 {
			s, err := layout.Open(spec, layout.Expect{Kind: layout.KindAny}, layout.WithInitTimeout(time.Millisecond))
			if err != nil {
				return err
			}
			defer s.Close()
			for j := range s.NumRegions() {
				r := s.Region(j)
				if len(r) > 0 {
					_ = r[len(r)-1]
				}
			}
			opened.Add(1)
			return nil
		}
		w, err := layout.OpenValue[seedOrder](spec, layout.WithInitTimeout(time.Millisecond))
		if err != nil {
			return err
		}
		defer w.Close()
		_ = w.Ptr().Count.Load() + int64(w.Ptr().ID)
		opened.Add(1)
		return nil
	})
	t.Logf("%d successful opens", opened.Load())
}
