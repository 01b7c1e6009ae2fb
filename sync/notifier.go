package sync

import (
	"context"
	"runtime"
	"sync/atomic"

	"github.com/shmkit/shmkit/internal/futex"
)

// notifySpin bounds the spinning phase of SpinThenPark.
const notifySpin = 64

// Notifier lets goroutines in any process wait for a condition that a peer
// makes true and then announces with Notify. It holds no condition itself:
// the condition is a ready func over other shared state (a ring index, say)
// that the notifier's peer updates with sync/atomic before calling Notify.
//
// Layout: a sequence word (the futex word) and a waiter count, 8 bytes,
// zero value ready. Notify makes no system call, and does not even write,
// when nobody is parked: a producer pays one atomic load.
type Notifier struct {
	seq     uint32 // bumped by Notify when waiters may be parked
	waiters uint32 // goroutines registered as (about to be) parked
}

// Waiters returns how many goroutines (in all processes) are registered as
// parked. A waiter killed while parked stays counted (costing its peers
// spurious wakes, never lost ones).
func (n *Notifier) Waiters() uint32 { return atomic.LoadUint32(&n.waiters) }

// Wait returns nil once ready() reports true, or ctx.Err() once ctx is done
// (with its waiter registration undone). ready must read the shared state
// with sync/atomic loads and have no side effects; it is called repeatedly.
//
// Protocol: spin (bounded, runtime.Gosched between checks) per policy;
// then to park: read seq, register as a waiter, re-check ready, and
// FUTEX_WAIT on seq while it still holds the value read. The notifier
// publishes its state, then reads the waiter count (Dekker via Go's
// sequentially consistent atomics), and only if it is non-zero bumps seq
// and wakes: so either it sees us registered, or we see the state.
func (n *Notifier) Wait(ctx context.Context, policy WaitPolicy, ready func() bool) error {
	if ready() {
		return nil
	}
	done := ctx.Done()
	if policy != ParkOnly {
		for i := 0; policy == SpinOnly || i < notifySpin; i++ {
			runtime.Gosched()
			if ready() {
				return nil
			}
			if i%16 == 15 && done != nil {
				select {
				case <-done:
					return ctx.Err()
				default:
				}
			}
		}
	}
	for {
		s := atomic.LoadUint32(&n.seq)
		atomic.AddUint32(&n.waiters, 1)
		if ready() {
			atomic.AddUint32(&n.waiters, ^uint32(0))
			return nil
		}
		err := futex.WaitContextTimeout(ctx, &n.seq, s, parkRecheck)
		atomic.AddUint32(&n.waiters, ^uint32(0))
		switch err {
		case nil, futex.ErrAgain, futex.ErrInterrupted, futex.ErrTimeout:
			if ready() {
				return nil
			}
		default:
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			return err
		}
	}
}

// Notify wakes every parked waiter so it re-checks its condition. Call it
// after publishing the state the waiters check. Without parked waiters it
// is one atomic load: no store, no system call.
func (n *Notifier) Notify() {
	if atomic.LoadUint32(&n.waiters) == 0 {
		return
	}
	atomic.AddUint32(&n.seq, 1)
	_, _ = futex.Wake(&n.seq, 0)
}
