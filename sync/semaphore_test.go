package sync_test

import (
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	shsync "github.com/shmkit/shmkit/sync"
)

func TestSemaphoreBasic(t *testing.T) {
	_, s := newShared(t)
	sem := &s.Sem
	if sem.Value() != 0 || sem.TryWait() {
		t.Fatal("zero Semaphore is not 0")
	}
	sem.Init(2)
	if !sem.TryWait() || !sem.TryWait() || sem.TryWait() {
		t.Fatal("Init(2) did not allow exactly two TryWaits")
	}
	if err := sem.Post(); err != nil {
		t.Fatal(err)
	}
	if err := sem.Wait(); err != nil || sem.Value() != 0 {
		t.Fatalf("Wait = %v, value %d", err, sem.Value())
	}
	sem.Init(shsync.SemValueMax)
	if err := sem.Post(); !errors.Is(err, shsync.ErrOverflow) || sem.Value() != shsync.SemValueMax {
		t.Fatalf("Post at max = %v, value %d", err, sem.Value())
	}
	sem.Init(1 << 31) // capped
	if sem.Value() != shsync.SemValueMax {
		t.Fatalf("Init above max: %d", sem.Value())
	}
}

func TestSemaphoreWaitContext(t *testing.T) {
	_, s := newShared(t)
	for _, c := range cancelCases(30 * time.Millisecond) {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := c.mk()
			defer cancel()
			start := time.Now()
			if err := s.Sem.WaitContext(ctx); !errors.Is(err, c.want) {
				t.Fatalf("WaitContext = %v, want %v", err, c.want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("took %v", d)
			}
			if w := s.Sem.Waiters(); w != 0 || s.Sem.Value() != 0 {
				t.Fatalf("after cancel: waiters %d value %d", w, s.Sem.Value())
			}
		})
	}
}

// Many goroutines parked on one semaphore, each post releases exactly one.
func TestSemaphoreGoroutines(t *testing.T) {
	_, s := newShared(t)
	const g = 8
	done := make(chan error, g)
	for range g {
		go func() { done <- s.Sem.Wait() }()
	}
	for range g {
		if err := s.Sem.Post(); err != nil {
			t.Fatal(err)
		}
	}
	for range g {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if s.Sem.Value() != 0 || s.Sem.Waiters() != 0 {
		t.Fatalf("value %d waiters %d", s.Sem.Value(), s.Sem.Waiters())
	}
}

// Cross-process ping-pong: every post is seen exactly once.
func TestSemaphorePingPong(t *testing.T) {
	spec, s := newShared(t)
	const n = 2000
	p := pingChild.Start(t, spec, strconv.Itoa(n))
	for range n {
		if err := s.Sem.Post(); err != nil {
			t.Fatal(err)
		}
		if err := s.Items.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Wait(time.Minute); err != nil {
		t.Fatalf("child: %v\n%s", err, p.Output())
	}
	if s.Sem.Value() != 0 || s.Items.Value() != 0 || s.Sem.Waiters() != 0 || s.Items.Waiters() != 0 {
		t.Fatalf("left: sem %d/%d items %d/%d", s.Sem.Value(), s.Sem.Waiters(), s.Items.Value(), s.Items.Waiters())
	}
}

// Go-heap data guarded by a shared Semaphore used as a lock: under -race
// the Post/Wait annotations must make this report-free.
func TestSemaphoreGuardsGoData(t *testing.T) {
	_, s := newShared(t)
	s.LockSem.Init(1)
	const g, k = 4, 2000
	guarded := 0
	done := make(chan error, g)
	for range g {
		go func() {
			for range k {
				if err := s.LockSem.Wait(); err != nil {
					done <- err
					return
				}
				guarded++
				if err := s.LockSem.Post(); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range g {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if guarded != g*k {
		t.Fatalf("guarded = %d, want %d", guarded, g*k)
	}
}

// A peer scribbling the waiter count to 0 makes Post skip the wake; the
// parked waiter still gets the value (after its periodic re-check), it
// does not hang.
func TestSemaphoreScribbledWaiters(t *testing.T) {
	_, s := newShared(t)
	got := make(chan error, 1)
	go func() { got <- s.Sem.Wait() }()
	for s.Sem.Waiters() == 0 {
		time.Sleep(time.Millisecond) // polling for the waiter to register
	}
	words := (*[2]uint32)(unsafePointer(&s.Sem))
	atomic.StoreUint32(&words[1], 0) // the scribble
	if err := s.Sem.Post(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiter hung after the waiter count was scribbled")
	}
}
