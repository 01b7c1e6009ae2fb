package sync

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmkit/shmkit/internal/futex"
)

// WaitPolicy says how a blocking call spends its time before the condition
// it waits for holds: the one waiting strategy of shmkit (Agrona's
// IdleStrategy, the Disruptor's WaitStrategy). Every blocking call of every
// structure runs the same three phases, and the policy sizes them:
//
//  1. spin: re-check in a tight loop, no yield, no system call, for Spin.
//     A running peer on another core is seen within one cache-line
//     transfer.
//  2. yield: re-check, yielding the processor between checks
//     (runtime.Gosched, and now and then sched_yield so that a peer waiting
//     for this very core in another process can run), for Yield.
//  3. park: sleep in the kernel on a futex word until a peer's Notify (or
//     the structure's own periodic re-check). With NoPark, phase 2 goes on
//     for ever instead: lowest latency, a whole core burnt while waiting.
//
// The zero WaitPolicy parks at once. Time is read once per batch of checks,
// never per check. A structure's handle keeps its own policy: each side of
// a ring chooses for itself.
type WaitPolicy struct {
	Spin   time.Duration // tight re-checking before yielding
	Yield  time.Duration // yielding re-checks before parking
	NoPark bool          // never park: yield for ever
}

// The usual policies.
var (
	// SpinThenPark is the default: sub-microsecond hand-offs when the peer
	// is quick, no CPU burnt when it is not.
	SpinThenPark = WaitPolicy{Spin: 2 * time.Microsecond, Yield: 20 * time.Microsecond}
	// SpinOnly never parks: lowest latency, burns a CPU while waiting. The
	// peer's Notify never needs a system call for it.
	SpinOnly = WaitPolicy{Spin: 20 * time.Microsecond, NoPark: true}
	// ParkOnly parks after one check: no spinning at all.
	ParkOnly = WaitPolicy{}
)

func (p WaitPolicy) String() string {
	switch p {
	case SpinThenPark:
		return "spin-then-park"
	case SpinOnly:
		return "spin-only"
	case ParkOnly:
		return "park-only"
	}
	if p.NoPark {
		return fmt.Sprintf("spin %v, then yield for ever", p.Spin)
	}
	return fmt.Sprintf("spin %v, yield %v, park", p.Spin, p.Yield)
}

// Validate reports a policy with negative durations.
func (p WaitPolicy) Validate() error {
	if p.Spin < 0 || p.Yield < 0 {
		return fmt.Errorf("wait policy %v: durations must not be negative", p)
	}
	return nil
}

// spinBatch is how many tight checks run between clock reads and context
// checks; yieldsPerSchedYield how many Gosched yields between sched_yields.
const (
	spinBatch           = 64
	yieldsPerSchedYield = 16
	osYieldAfter        = 10 * time.Microsecond
)

// waitLoop is the one waiting loop: it runs p's phases around ready (which
// may have side effects, such as taking a lock, and reports success) and,
// in the park phase, calls park, which sleeps once and may return early for
// any reason. ready is always checked after park returns, even when park
// returns ctx's error, so a wake that arrives together with a cancellation
// is never swallowed: the waiter takes what it was woken for.
//
// poll, when not nil, runs every pollEvery in every phase (a structure's
// periodic check of a stuck peer); if it reports true the loop re-checks
// ready at once.
func (p WaitPolicy) waitLoop(ctx context.Context, ready func() bool, park func(ctx context.Context, timeout time.Duration) error, pollEvery time.Duration, poll func() bool) error {
	if ready() {
		return nil
	}
	if p.Spin > 0 || p.Yield > 0 || p.NoPark {
		start := time.Now()
		lastPoll := start
		// between runs every batch of checks: the clock, ctx and the poll.
		// It reports whether the wait is over (err says how) and the time
		// spent so far.
		between := func() (over bool, err error, spent time.Duration) {
			now := time.Now()
			if err := ctx.Err(); err != nil {
				if ready() {
					return true, nil, 0 // ready when ctx ended: ready wins
				}
				return true, err, 0
			}
			if poll != nil && now.Sub(lastPoll) >= pollEvery {
				lastPoll = now
				if poll() && ready() {
					return true, nil, 0
				}
			}
			return false, nil, now.Sub(start)
		}
		// Phase 1: spin.
		for {
			for range spinBatch {
				if ready() {
					return nil
				}
			}
			over, err, spent := between()
			if over {
				return err
			}
			if spent >= p.Spin {
				break
			}
		}
		// Phase 2: yield. First to other goroutines only; once the peer
		// has had osYieldAfter to show up, to other processes on every
		// check: with more runnable threads than cores (four queue
		// processes on two cores) the peer may be waiting for this core.
		osYield := false
		for i := 1; ; i++ {
			runtime.Gosched()
			if osYield || i%yieldsPerSchedYield == 0 {
				_, _, _ = unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			}
			if ready() {
				return nil
			}
			if i%8 != 0 {
				continue
			}
			over, err, spent := between()
			if over {
				return err
			}
			if !p.NoPark && spent >= p.Spin+p.Yield {
				break
			}
			osYield = spent >= p.Spin+osYieldAfter
		}
	}
	// Phase 3: park. With a poll, each park is bounded by pollEvery (the
	// futex call's own timeout: no timer or context is made per park).
	var timeout time.Duration
	if poll != nil {
		timeout = pollEvery
	}
	for {
		err := park(ctx, timeout)
		if ready() {
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if poll != nil && err == futex.ErrTimeout {
			if poll() && ready() {
				return nil
			}
			continue
		}
		if !spurious(err) {
			return err
		}
	}
}

// spurious reports a park result that only means "look again".
func spurious(err error) bool {
	return err == nil || err == futex.ErrAgain || err == futex.ErrInterrupted || err == futex.ErrTimeout
}
