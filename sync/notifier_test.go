package sync_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/atomicx"
	"github.com/shmkit/shmkit/internal/racemode"
	"github.com/shmkit/shmkit/internal/testproc"
	shsync "github.com/shmkit/shmkit/sync"
)

func TestNotifierPolicies(t *testing.T) {
	for _, policy := range []shsync.WaitPolicy{shsync.SpinThenPark, shsync.SpinOnly, shsync.ParkOnly} {
		t.Run(policy.String(), func(t *testing.T) {
			_, s := newShared(t)
			const rounds = 500
			done := make(chan error, 1)
			go func() {
				for i := uint32(1); i <= rounds; i++ {
					if err := s.Note.Wait(context.Background(), policy, func() bool { return atomic.LoadUint32(&s.Flag) >= i }); err != nil {
						done <- err
						return
					}
					atomic.StoreUint32(&s.Flag2, i)
					s.Note2.Notify()
				}
				done <- nil
			}()
			for i := uint32(1); i <= rounds; i++ {
				atomic.StoreUint32(&s.Flag, i)
				s.Note.Notify()
				if err := s.Note2.Wait(context.Background(), policy, func() bool { return atomic.LoadUint32(&s.Flag2) >= i }); err != nil {
					t.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			// The last round's waiter may leave its bit set (nobody
			// notified after it woke by itself); one Notify clears it.
			s.Note.Notify()
			s.Note2.Notify()
			if s.Note.Waiting() || s.Note2.Waiting() {
				t.Fatal("parked bit left set after Notify")
			}
		})
	}
}

func TestNotifierCancel(t *testing.T) {
	_, s := newShared(t)
	never := func() bool { return false }
	for _, policy := range []shsync.WaitPolicy{shsync.SpinThenPark, shsync.SpinOnly, shsync.ParkOnly} {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		start := time.Now()
		if err := s.Note.Wait(ctx, policy, never); !errors.Is(err, context.Canceled) {
			t.Fatalf("%v: Wait = %v", policy, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("%v: cancel took %v", policy, d)
		}
		ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
		if err := s.Note.Wait(ctx2, policy, never); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%v: Wait = %v", policy, err)
		}
		cancel2()
		// A cancelled waiter may leave the parked bit set: the next
		// Notify clears it (one spurious wake), and then it stays clear.
		s.Note.Notify()
		if s.Note.Waiting() {
			t.Fatalf("%v: parked bit survives a Notify", policy)
		}
	}
}

// Notify with nobody parked writes nothing: the sequence word is unchanged.
func TestNotifyWithoutWaiters(t *testing.T) {
	_, s := newShared(t)
	before := *(*[2]uint32)(unsafePointer(&s.Note))
	for range 100 {
		s.Note.Notify()
	}
	if after := *(*[2]uint32)(unsafePointer(&s.Note)); after != before {
		t.Fatalf("Notifier words changed %v -> %v without waiters", before, after)
	}
}

// A wait that is not over at its first look goes through the wait loop and
// its park step: none of it may allocate (a consumer that keeps up with its
// producer waits once per item). Both Wait and WaitPoll, through the park
// phase too.
func TestNotifierWaitAllocs(t *testing.T) {
	if racemode.Enabled {
		t.Skip("the race detector allocates")
	}
	var n shsync.Notifier
	ctx := context.Background()
	looks := 0
	ready := func() bool { looks++; return looks >= 2 } // the second look succeeds
	poll := func() bool { return false }
	// Called through method values, as a structure in another package
	// calls them: not inlined into the test, where escape analysis could
	// see more than it does there.
	wait, waitPoll := n.Wait, n.WaitPoll
	for _, p := range []shsync.WaitPolicy{shsync.SpinThenPark, shsync.ParkOnly} {
		if a := testing.AllocsPerRun(200, func() { looks = 0; _ = wait(ctx, p, ready) }); a != 0 {
			t.Errorf("Wait(%v): %v allocations per call, want 0", p, a)
		}
		if a := testing.AllocsPerRun(200, func() { looks = 0; _ = waitPoll(ctx, p, ready, time.Millisecond, poll) }); a != 0 {
			t.Errorf("WaitPoll(%v): %v allocations per call, want 0", p, a)
		}
	}
}

// publishChild: args spec, n. Publishes 1..n on s.Pub (a store and Notify
// on s.Note), each after the parent acknowledged the one before
// on s.Ack; it spins for the acknowledgement and then for 0-63 atomic adds
// more, so each new value lands at a different moment of the parent's way
// to sleep: arming, re-checking. (With the store made a plain MOV, which
// lets Notify's load pass it, this loses a wake within a few thousand
// values; a wider random pause made the race too rare to see.)
//
// A third argument "light" publishes with a release store (a plain MOV on
// amd64), as a structure does where shsync.LightWakes holds: then only the
// waiter's barrier keeps the wake.
var publishChild = testproc.Register("publish", func(args []string) error {
	s, err := openShared(args[0])
	if err != nil {
		return err
	}
	n := uint64(atoi(args[1]))
	light := len(args) > 2 && args[2] == "light"
	if light && !shsync.LightWakes() {
		return errors.New("light publishing asked for, but LightWakes is false in the child")
	}
	ctx := context.Background()
	for i := uint64(1); i <= n; i++ {
		if light {
			atomicx.StoreReleaseUint64(&s.Pub, i)
		} else {
			s.Pub.Store(i)
		}
		s.Note.Notify()
		if err := s.Note2.Wait(ctx, shsync.SpinOnly, func() bool { return s.Ack.Load() >= i }); err != nil {
			return err
		}
		for range rand.IntN(64) {
			spinSink.Add(1)
		}
	}
	return nil
})

var spinSink atomic.Uint32

// TestNotifierPublishNoLostWake checks Dekker's handshake across
// processes where it is tightest: a publisher in another process stores a
// value and notifies just as the waiter here arms the parked bit and
// re-checks, and the waiter parks for every value (ParkOnly, no periodic
// re-check), so a single lost wake leaves it asleep for good and the test
// fails at its deadline, naming the value.
func TestNotifierPublishNoLostWake(t *testing.T) {
	testPublishNoLostWake(t, "atomic", 20000)
}

// TestNotifierLightPublishNoLostWake is the same with the publisher's
// store a release store (light wakes) and the waiter waiting with
// WaitPollFenced: the waiter's membarrier is all that orders the
// publisher's store before its load of the parked bit. (With
// fenceParked's barrier taken out, this loses a wake in every run, at the
// 5000th to the 70000th value; it runs 100000.)
func TestNotifierLightPublishNoLostWake(t *testing.T) {
	if !shsync.LightWakes() {
		t.Skip("membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) refused here: light wakes are off, and nothing publishes with release stores")
	}
	testPublishNoLostWake(t, "light", 100000)
}

// testPublishNoLostWake runs n values (fewer under -race) past a waiter
// that parks for each. A wait that lasts lostWake slept through its wake:
// a woken waiter is back within microseconds, and no scheduling delay
// comes near seconds. (Its context ends then, and a Wait whose condition
// holds when its context ends returns nil, so the duration is the test.)
func testPublishNoLostWake(t *testing.T, mode string, n int) {
	const lostWake = 5 * time.Second
	if racemode.Enabled {
		n = 5000
	}
	spec, s := newShared(t)
	p := publishChild.Start(t, spec, strconv.Itoa(n), mode)
	for i := uint64(1); i <= uint64(n); i++ {
		ctx, cancel := context.WithTimeout(context.Background(), lostWake)
		t0 := time.Now()
		ready := func() bool { return s.Pub.Load() >= i }
		var err error
		if mode == "light" {
			err = s.Note.WaitPollFenced(ctx, shsync.ParkOnly, ready, 0, nil)
		} else {
			err = s.Note.Wait(ctx, shsync.ParkOnly, ready)
		}
		cancel()
		if err == nil && time.Since(t0) >= lostWake {
			err = errors.New("woken only by the end of its context")
		}
		if err != nil {
			p.Signal(syscall.SIGQUIT)
			_ = p.Wait(10 * time.Second)
			t.Fatalf("waiting for value %d of %d (published: %d): %v: a wake was lost\npublisher:\n%s", i, n, s.Pub.Load(), err, p.Output())
		}
		s.Ack.Store(i)
		s.Note2.Notify()
	}
	if err := p.Wait(time.Minute); err != nil {
		t.Fatalf("publisher: %v\n%s", err, p.Output())
	}
}
