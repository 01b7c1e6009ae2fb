package livetest_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/shmring"
	shsync "github.com/shmkit/shmkit/sync"
)

// newRings creates n rings of capacity slots, removed at cleanup.
func newRings(t *testing.T, n, capacity int) ([]string, []*shmring.Ring[uint64]) {
	t.Helper()
	specs := make([]string, n)
	rings := make([]*shmring.Ring[uint64], n)
	for i := range n {
		specs[i] = "posix:/" + testproc.UniqueName("waitset")
		r, err := shmring.Create[uint64](specs[i], capacity)
		if err != nil {
			t.Fatal(err)
		}
		rings[i] = r
		t.Cleanup(func() {
			_ = r.Close()
			_ = shmring.Remove(specs[i])
		})
	}
	return specs, rings
}

func newWaitSet(t *testing.T, rings []*shmring.Ring[uint64]) *shsync.WaitSet {
	t.Helper()
	srcs := make([]shsync.Waitable, len(rings))
	for i, r := range rings {
		srcs[i] = r
	}
	ws, err := shsync.NewWaitSet(srcs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	return ws
}

// item encodes a producer's ring index and sequence number.
func item(ring, seq int) uint64 { return uint64(ring)<<32 | uint64(seq) }

// feedChild: args spec, ring index, count, pause (µs). Pushes count items
// (1..count) with a pause between them, blocking while the ring is full.
var feedChild = testproc.Register("waitset-feed", func(args []string) error {
	r, err := shmring.Open[uint64](args[0])
	if err != nil {
		return err
	}
	defer r.Close()
	idx, n, pause := atoi(args[1]), atoi(args[2]), time.Duration(atoi(args[3]))*time.Microsecond
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for seq := 1; seq <= n; seq++ {
		if err := r.Push(ctx, item(idx, seq)); err != nil {
			return fmt.Errorf("push %d: %w", seq, err)
		}
		if pause > 0 {
			time.Sleep(pause)
		}
	}
	return nil
})

// Three rings, each fed by its own process at its own rate (one bursts
// through a ring much smaller than its total, one trickles): one consumer
// waits on all three with one WaitSet, drains whatever is ready, and gets
// every item of every ring exactly once, in order.
func TestWaitSetThreeProducers(t *testing.T) {
	specs, rings := newRings(t, 3, 16)
	ws := newWaitSet(t, rings)
	counts := []int{2000, 300, 60}
	pauses := []int{0, 500, 10000} // µs between pushes
	procs := make([]*testproc.Proc, 3)
	for i := range 3 {
		procs[i] = feedChild.Start(t, specs[i], strconv.Itoa(i), strconv.Itoa(counts[i]), strconv.Itoa(pauses[i]))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	next := []int{1, 1, 1}
	var waits, spurious int
	readyHits := make([]int, 3)
	for next[0] <= counts[0] || next[1] <= counts[1] || next[2] <= counts[2] {
		i, err := ws.Wait(ctx)
		if err != nil {
			t.Fatalf("Wait: %v; got %v of %v", err, next, counts)
		}
		waits++
		if i < 0 || i >= 3 {
			t.Fatalf("Wait returned index %d", i)
		}
		readyHits[i]++
		got := 0
		for {
			v, ok := rings[i].TryPop()
			if !ok {
				break
			}
			got++
			if v != item(i, next[i]) {
				t.Fatalf("ring %d: got item (ring %d, seq %d), want seq %d", i, v>>32, v&0xffffffff, next[i])
			}
			next[i]++
		}
		if got == 0 {
			spurious++ // allowed (another reader could have been quicker), but we are the only one
		}
	}
	for i, p := range procs {
		if err := p.Wait(30 * time.Second); err != nil {
			t.Fatalf("producer %d: %v\n%s", i, err, p.Output())
		}
	}
	for i, r := range rings {
		if r.Len() != 0 {
			t.Fatalf("ring %d holds %d items after all were drained", i, r.Len())
		}
	}
	if spurious != 0 {
		t.Fatalf("%d of %d Waits reported a ring with nothing in it (this test has one consumer)", spurious, waits)
	}
	for i, n := range readyHits {
		if n == 0 {
			t.Fatalf("ring %d was never reported ready", i)
		}
	}
	t.Logf("%d Waits (per ring %v) for %v items", waits, readyHits, counts)
}

// threadCPU returns the CPU time (user+system) of the calling OS thread.
func threadCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// A WaitSet over idle rings parks: 2 s of waiting costs (nearly) no CPU,
// and the rings show a parked consumer.
func TestWaitSetIdleCPU(t *testing.T) {
	_, rings := newRings(t, 3, 8)
	ws := newWaitSet(t, rings)
	const idle = 2 * time.Second
	type result struct {
		idx      int
		err      error
		cpu, dur time.Duration
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		ctx, cancel := context.WithTimeout(context.Background(), idle)
		defer cancel()
		c0, t0 := threadCPU(t), time.Now()
		i, err := ws.Wait(ctx)
		res <- result{i, err, threadCPU(t) - c0, time.Since(t0)}
	}()
	time.Sleep(100 * time.Millisecond)
	for i, r := range rings {
		st, err := r.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if !st.ConsumerWaiting {
			t.Fatalf("ring %d: no parked consumer 100 ms into an idle Wait", i)
		}
	}
	r := <-res
	if !errors.Is(r.err, context.DeadlineExceeded) || r.idx != -1 {
		t.Fatalf("idle Wait = %d, %v; want -1, DeadlineExceeded", r.idx, r.err)
	}
	if r.dur < idle-10*time.Millisecond {
		t.Fatalf("idle Wait returned after %v, before its %v deadline", r.dur, idle)
	}
	if r.cpu >= 100*time.Millisecond {
		t.Fatalf("idle Wait of %v burnt %v of CPU, want < 100ms", r.dur, r.cpu)
	}
	t.Logf("idle Wait of %v used %v of CPU", r.dur.Round(time.Millisecond), r.cpu)
}

// Cancelling a parked Wait returns ctx.Err() promptly; a source that is
// ready when ctx ends wins over the cancellation.
func TestWaitSetCancel(t *testing.T) {
	_, rings := newRings(t, 3, 8)
	ws := newWaitSet(t, rings)

	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		const after = 50 * time.Millisecond
		time.AfterFunc(after, cancel)
		t0 := time.Now()
		i, err := ws.Wait(ctx)
		el := time.Since(t0)
		if i != -1 || !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %d, %v; want -1, Canceled", i, err)
		}
		if el < after || el > after+time.Second {
			t.Fatalf("cancelled %v in: Wait returned after %v", after, el)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		t0 := time.Now()
		i, err := ws.Wait(ctx)
		if el := time.Since(t0); i != -1 || !errors.Is(err, context.DeadlineExceeded) || el > time.Second {
			t.Fatalf("Wait = %d, %v after %v; want -1, DeadlineExceeded after 30ms", i, err, el)
		}
	})
	t.Run("done-before-wait", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if i, err := ws.Wait(ctx); i != -1 || !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait on a done ctx, nothing ready = %d, %v; want -1, Canceled", i, err)
		}
		// Ready and done: the ready source wins.
		if !rings[2].TryPush(7) {
			t.Fatal("TryPush failed")
		}
		if i, err := ws.Wait(ctx); i != 2 || err != nil {
			t.Fatalf("Wait on a done ctx, ring 2 ready = %d, %v; want 2, nil", i, err)
		}
		if v, ok := rings[2].TryPop(); !ok || v != 7 {
			t.Fatalf("TryPop = %d, %v", v, ok)
		}
	})
	// A publish and a cancel arriving together: the publish happened
	// first, so whenever ctx is seen done the source is already ready and
	// must win. Run in every phase of the wait loop: parked (default policy,
	// pause before publishing), spinning and yielding (SpinOnly).
	for _, pc := range []struct {
		name   string
		policy shsync.WaitPolicy
	}{{"spin-then-park", shsync.SpinThenPark}, {"spin-only", shsync.SpinOnly}} {
		t.Run("ready-and-cancel-race/"+pc.name, func(t *testing.T) {
			ws.SetPolicy(pc.policy)
			defer ws.SetPolicy(shsync.SpinThenPark)
			for n := range 300 {
				ctx, cancel := context.WithCancel(context.Background())
				src := n % 3
				pushed := make(chan bool)
				go func() {
					if n%2 == 0 {
						time.Sleep(50 * time.Microsecond)
					}
					ok := rings[src].TryPush(uint64(n))
					cancel()
					pushed <- ok
				}()
				i, err := ws.Wait(ctx)
				// Joined each round: the rings' producer side is used by
				// one goroutine at a time.
				if !<-pushed {
					t.Fatalf("round %d: TryPush failed", n)
				}
				if err != nil || i != src {
					// ctx can only be done after the push: a Wait that
					// returns ctx.Err() missed a ready source.
					t.Fatalf("round %d: Wait = %d, %v; the push to ring %d preceded the cancel and must win", n, i, err, src)
				}
				if v, ok := rings[src].TryPop(); !ok || v != uint64(n) {
					t.Fatalf("round %d: TryPop = %d, %v", n, v, ok)
				}
				cancel()
			}
		})
	}
}

// More than MaxWaitSources sources (or none) is refused with ErrCapacity;
// exactly MaxWaitSources works.
func TestWaitSetCapacity(t *testing.T) {
	_, rings := newRings(t, 1, 8)
	r := rings[0]
	srcs := make([]shsync.Waitable, shsync.MaxWaitSources+1)
	for i := range srcs {
		srcs[i] = r
	}
	if _, err := shsync.NewWaitSet(srcs...); !errors.Is(err, shmring.ErrCapacity) {
		t.Fatalf("NewWaitSet(%d sources) = %v, want ErrCapacity", len(srcs), err)
	}
	if _, err := shsync.NewWaitSet(); !errors.Is(err, shmring.ErrCapacity) {
		t.Fatalf("NewWaitSet() = %v, want ErrCapacity", err)
	}
	ws, err := shsync.NewWaitSet(srcs[:shsync.MaxWaitSources]...)
	if err != nil {
		t.Fatalf("NewWaitSet(%d sources): %v", shsync.MaxWaitSources, err)
	}
	defer ws.Close()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := ws.Wait(ctx)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let it park on all 127 words
	r.TryPush(1)
	if err := <-done; err != nil {
		t.Fatalf("Wait over %d sources: %v", shsync.MaxWaitSources, err)
	}
}

// pushOnCommand: args spec0, spec1, spec2. On "push I V" pushes V to ring
// I and replies "pushed".
var pushOnCommand = testproc.Register("waitset-push-on-command", func(args []string) error {
	rings := make([]*shmring.Ring[uint64], len(args))
	for i, spec := range args {
		r, err := shmring.Open[uint64](spec)
		if err != nil {
			return err
		}
		rings[i] = r
	}
	reply("ready")
	for cmd := range commands() {
		var i int
		var v uint64
		if _, err := fmt.Sscanf(cmd, "push %d %d", &i, &v); err != nil {
			return fmt.Errorf("bad command %q: %w", cmd, err)
		}
		if !rings[i].TryPush(v) {
			return fmt.Errorf("TryPush to ring %d failed", i)
		}
		reply("pushed")
	}
	return nil
})

// A WaitSet parked (idle well past its spin and yield phases) is woken by
// another process's publish.
func TestWaitSetWokenByOtherProcess(t *testing.T) {
	specs, rings := newRings(t, 3, 8)
	ws := newWaitSet(t, rings)
	p := mustStart(t, pushOnCommand, nil, specs...)
	p.expect("ready", 20*time.Second)
	for round, src := range []int{1, 0, 2} {
		type result struct {
			i   int
			err error
			at  time.Time
		}
		res := make(chan result, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			i, err := ws.Wait(ctx)
			res <- result{i, err, time.Now()}
		}()
		time.Sleep(20 * time.Millisecond)
		st, err := rings[src].Stats()
		if err != nil {
			t.Fatal(err)
		}
		if !st.ConsumerWaiting {
			t.Fatalf("round %d: Wait not parked after 20 ms idle", round)
		}
		select {
		case r := <-res:
			t.Fatalf("round %d: Wait returned %d, %v with nothing published", round, r.i, r.err)
		default:
		}
		sent := time.Now()
		p.send(fmt.Sprintf("push %d %d", src, 100+round))
		r := <-res
		if r.err != nil || r.i != src {
			t.Fatalf("round %d: Wait = %d, %v; want %d", round, r.i, r.err, src)
		}
		t.Logf("round %d: woken %v after the command was sent", round, r.at.Sub(sent))
		p.expect("pushed", 10*time.Second)
		if v, ok := rings[src].TryPop(); !ok || v != uint64(100+round) {
			t.Fatalf("round %d: TryPop = %d, %v", round, v, ok)
		}
	}
}
