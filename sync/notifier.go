package sync

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/futex"
)

// Notifier lets goroutines in any process wait for a condition that a peer
// makes true and then announces with Notify. It holds no condition itself:
// the condition is a ready func over other shared state (a ring index, say)
// that the notifier's peer updates with sync/atomic before calling Notify.
//
// Layout: one futex word (a 31-bit sequence and a "parked" bit) and a
// reserved word, 8 bytes, zero value ready. Notify makes no system call, and
// does not even write, when nobody is parked: a producer pays one atomic
// load that hits in its cache.
//
// # The parked bit, and why a dead waiter cannot inflate it
//
// A waiter about to sleep sets the parked bit (CAS), re-checks its
// condition, and sleeps on the word while it still holds the value it set.
// Notify, after the caller published its state, loads the word; if the bit
// is set it clears the bit and bumps the sequence in one CAS and wakes every
// sleeper. This is Dekker's pattern over Go's sequentially consistent
// atomics: either Notify sees the bit, or the waiter's re-check sees the
// state. (A waker in a process where LightWakes holds may publish with a
// release store instead, if every waiter whose condition only that store
// makes true waits with WaitPollFenced: the waiter's barrier then stands in
// for the waker's fence; see lightwake.go.) Waking all is what makes
// clearing the bit safe: every sleeper wakes, re-checks, and sets the bit
// again if it must sleep again.
//
// A counted design (waiters++ / waiters--) leaks a count when a parked
// waiter is SIGKILLed, and every later Notify then pays a FUTEX_WAKE for
// nobody. Here a dead waiter leaves at most the bit set, and the next Notify
// clears it: one wasted wake, then none.
type Notifier struct {
	word uint32 // bits 0-30: sequence; bit 31: some waiter may be parked
	_    uint32 // reserved, zero
}

const parkedBit = 1 << 31

// Waiting reports whether some goroutine (in any process) may be parked.
// It is a hint for diagnostics: a waiter killed while parked keeps it true
// until the next Notify.
//
// It is also the notifier's half of the handshake: a caller that publishes
// state with an atomic store and then asks Waiting (or calls Notify) is
// ordered store-before-load, so either it sees the bit or the waiter sees
// its state. (After a release store it is not ordered; a waiter that waits
// with WaitPollFenced makes up for it.)
func (n *Notifier) Waiting() bool {
	dekkerFence()
	return atomic.LoadUint32(&n.word)&parkedBit != 0
}

// Wait returns nil once ready() reports true, or ctx.Err() once ctx is done.
// ready must read the shared state with sync/atomic loads and have no side
// effects; it is called repeatedly. The policy sizes the spin, yield and
// park phases (see WaitPolicy). A ready() that holds when ctx ends wins: the
// call returns nil.
func (n *Notifier) Wait(ctx context.Context, policy WaitPolicy, ready func() bool) error {
	return policy.waitLoop(ctx, ready, n.parker(ready, false), 0, nil)
}

// WaitPoll is Wait for structures that must also look after their peers
// while waiting: every pollEvery (spinning, yielding or parked) it calls
// poll, which may repair the shared state (say, take over a dead peer's
// half-done operation) and reports whether the caller should re-check.
func (n *Notifier) WaitPoll(ctx context.Context, policy WaitPolicy, ready func() bool, pollEvery time.Duration, poll func() bool) error {
	return n.waitPoll(ctx, policy, ready, pollEvery, poll, false)
}

// LookAgain is the poll of a WaitPoll (or of any periodic look) with
// nothing to repair: it only asks the waiter to check its condition again,
// so that a waiter whose peer never notifies (it died, or truncated the
// segment) is delayed by pollEvery instead of hung.
func LookAgain() bool { return true }

// WaitPollFenced is WaitPoll for a waiter whose waker may publish the state
// ready checks with a release store rather than an atomic one (a process
// where LightWakes holds): after setting the parked bit and before the
// re-check that decides to sleep, each park issues the barrier that stands
// in for the waker's missing store-load fence (see lightwake.go). The
// barrier costs about a microsecond per park, and interrupts every CPU
// running a registered process: use it for the waits that need it.
func (n *Notifier) WaitPollFenced(ctx context.Context, policy WaitPolicy, ready func() bool, pollEvery time.Duration, poll func() bool) error {
	return n.waitPoll(ctx, policy, ready, pollEvery, poll, true)
}

func (n *Notifier) waitPoll(ctx context.Context, policy WaitPolicy, ready func() bool, pollEvery time.Duration, poll func() bool, fence bool) error {
	if pollEvery <= 0 {
		pollEvery = time.Millisecond
	}
	return policy.waitLoop(ctx, ready, n.parker(ready, fence), pollEvery, poll)
}

// parker returns the park step of Wait: register, (fence,) re-check, sleep.
func (n *Notifier) parker(ready func() bool, fence bool) func(context.Context, time.Duration) error {
	return func(ctx context.Context, timeout time.Duration) error {
		w, ok := n.arm()
		if !ok {
			return nil
		}
		if fence {
			timeout = fenceParked(timeout)
		}
		if ready() {
			return nil
		}
		return futex.WaitContextTimeout(ctx, &n.word, w, timeout)
	}
}

// arm sets the parked bit and returns the word to sleep on. ok is false when
// the word is changing under us (a Notify in flight): the caller re-checks
// instead of sleeping.
func (n *Notifier) arm() (w uint32, ok bool) {
	w = atomic.LoadUint32(&n.word)
	if w&parkedBit != 0 {
		return w, true
	}
	if atomic.CompareAndSwapUint32(&n.word, w, w|parkedBit) {
		return w | parkedBit, true
	}
	return 0, false
}

// Notify wakes every parked waiter so it re-checks its condition. Call it
// after publishing the state the waiters check. Without parked waiters it
// is one atomic load: no store, no system call.
//
// It is small enough to inline (TestNotifyInlines), and must stay so: the
// structures call it as ctl.notEmpty.Notify() right after publishing, and
// a call that is not inlined makes the caller nil-check ctl with a load of
// its first line, which is the ring's tail: the line the consumer is
// polling at that moment. That load cost the ring's round trip about 45 ns
// (a chunked two-process probe: p50 163 -> 116 ns, against 129 ns for the
// same protocol in bare C; shmbench's pingpong/ring-default p50 210 -> 161
// ns, with a clock read in each round trip).
func (n *Notifier) Notify() {
	dekkerFence()
	if w := atomic.LoadUint32(&n.word); w&parkedBit != 0 {
		n.wake(w)
	}
}

// wake is Notify once it has seen the parked bit in w.
func (n *Notifier) wake(w uint32) {
	for {
		// Bump the sequence (it wraps within the low 31 bits) and clear
		// the bit, so sleepers that have not slept yet see a new value.
		next := (w + 1) &^ parkedBit
		if atomic.CompareAndSwapUint32(&n.word, w, next) {
			break
		}
		w = atomic.LoadUint32(&n.word)
		if w&parkedBit == 0 {
			return // another notifier cleared it and wakes them
		}
	}
	_, _ = futex.Wake(&n.word, 0)
}

// word returns the futex word, for WaitSet.
func (n *Notifier) futexWord() *uint32 { return &n.word }
