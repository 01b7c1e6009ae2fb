package sync_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/racemode"
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
