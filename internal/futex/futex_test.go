package futex

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitMismatch(t *testing.T) {
	var w uint32 = 1
	if err := Wait(&w, 0, 0); err != ErrAgain {
		t.Fatalf("Wait with a stale value = %v, want ErrAgain", err)
	}
}

func TestWaitTimeout(t *testing.T) {
	var w uint32
	start := time.Now()
	if err := Wait(&w, 0, 20*time.Millisecond); err != ErrTimeout {
		t.Fatalf("Wait = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d < 15*time.Millisecond {
		t.Fatalf("timed out after %v", d)
	}
}

func TestWaitWake(t *testing.T) {
	var w uint32
	done := make(chan error)
	go func() {
		for atomic.LoadUint32(&w) == 0 {
			err := Wait(&w, 0, 0)
			if err != nil && err != ErrAgain && err != ErrInterrupted {
				done <- err
				return
			}
		}
		done <- nil
	}()
	atomic.StoreUint32(&w, 1)
	for {
		if _, err := Wake(&w, 1); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return
		case <-time.After(time.Millisecond):
		}
	}
}

func TestWakeNobody(t *testing.T) {
	var w uint32
	if n, err := Wake(&w, 0); n != 0 || err != nil {
		t.Fatalf("Wake = %d, %v", n, err)
	}
}

func TestWaitContext(t *testing.T) {
	var w uint32
	// Deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := WaitContext(ctx, &w, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: %v", err)
	}
	// Cancel.
	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel2)
	start := time.Now()
	if err := WaitContext(ctx2, &w, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("cancel took %v", d)
	}
	// Already done.
	if err := WaitContext(ctx2, &w, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("done ctx: %v", err)
	}
	// Mismatch and timeout.
	w = 3
	if err := WaitContext(context.Background(), &w, 0); err != ErrAgain {
		t.Fatalf("mismatch (no Done): %v", err)
	}
	ctx3, cancel3 := context.WithCancel(context.Background())
	defer cancel3()
	if err := WaitContext(ctx3, &w, 0); err != ErrAgain {
		t.Fatalf("mismatch: %v", err)
	}
	if err := WaitContextTimeout(ctx3, &w, 3, 10*time.Millisecond); err != ErrTimeout {
		t.Fatalf("timeout: %v", err)
	}
	// Woken.
	var v uint32
	got := make(chan error, 1)
	go func() {
		for atomic.LoadUint32(&v) == 0 {
			if err := WaitContext(ctx3, &v, 0); err != nil && err != ErrAgain && err != ErrInterrupted {
				got <- err
				return
			}
		}
		got <- nil
	}()
	atomic.StoreUint32(&v, 1)
	for {
		Wake(&v, 0)
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
			return
		case <-time.After(time.Millisecond):
		}
	}
}

func TestPollFallback(t *testing.T) {
	var w uint32
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	if err := pollWait(ctx, &w, 0, -1, false); !errors.Is(err, context.Canceled) {
		t.Fatalf("pollWait cancel: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel2()
	if err := pollWait(ctx2, &w, 0, 30*time.Millisecond, true); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("pollWait deadline: %v", err)
	}
}

func BenchmarkWakeNobody(b *testing.B) {
	var w uint32
	for b.Loop() {
		Wake(&w, 1)
	}
}

// WaitAny's bound: its own timeout ends it with ErrTimeout, an earlier
// context deadline with the context's error, and both through futex_waitv
// and through the polling fallback.
func TestWaitAnyTimeout(t *testing.T) {
	var a, b uint32
	addrs, vals := []*uint32{&a, &b}, []uint32{0, 0}
	start := time.Now()
	if _, err := WaitAny(context.Background(), addrs, vals, 20*time.Millisecond); err != ErrTimeout {
		t.Fatalf("WaitAny with a timeout = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("WaitAny returned after %v, before its 20ms timeout", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := WaitAny(ctx, addrs, vals, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitAny with an earlier context deadline = %v, want context.DeadlineExceeded", err)
	}
	if _, err := pollAny(context.Background(), addrs, vals, 20*time.Millisecond, false); err != ErrTimeout {
		t.Fatalf("pollAny past its timeout = %v, want ErrTimeout", err)
	}
	// ctx's deadline as the bound, before its timer has cancelled it.
	if _, err := pollAny(context.Background(), addrs, vals, 20*time.Millisecond, true); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("pollAny past its context's deadline = %v, want context.DeadlineExceeded", err)
	}
	b = 1
	if i, err := WaitAny(context.Background(), addrs, vals, time.Hour); i != -1 && i != 1 || err != ErrAgain && err != nil {
		t.Fatalf("WaitAny with a changed word = %d, %v, want ErrAgain", i, err)
	}
}
