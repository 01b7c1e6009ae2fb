package sync

import (
	"context"
	"math"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/futex"
)

// SemValueMax is the largest value a Semaphore holds (SEM_VALUE_MAX).
const SemValueMax = math.MaxInt32

// parkRecheck bounds every park: a waiter re-checks its condition at least
// this often even if no wake arrives. Wakes are never lost by the protocol,
// but a peer scribbling the waiter count to 0 could make a poster skip one;
// this turns that into a delay instead of a hang.
const parkRecheck = time.Second

// semPolicy is how a blocked Semaphore.Wait waits: a few microseconds of
// yielding re-checks, then park.
var semPolicy = WaitPolicy{Yield: 5 * time.Microsecond}

// Semaphore is a process-shared counting semaphore, like a POSIX semaphore
// made with sem_init(pshared=1), living in a shared segment. The zero value
// has value 0; call Init before sharing to start elsewhere. Any goroutine
// of any process may call any method concurrently, except Init.
//
// Layout: two 32-bit words (value, waiters), 8 bytes. Post skips the
// FUTEX_WAKE system call when the waiter count is zero.
//
// A Semaphore is not robust: a process killed after Wait and before its
// Post never posts. Use Mutex, or SemSet with SEM_UNDO, for locks that must
// survive their holder's death.
type Semaphore struct {
	value   uint32 // the count; also the futex word waiters sleep on
	waiters uint32 // goroutines registered as (about to be) parked
}

// Init sets the value to v (capped at SemValueMax) and clears the waiter
// count. Call it only before the semaphore is shared.
func (s *Semaphore) Init(v uint32) {
	atomic.StoreUint32(&s.value, min(v, SemValueMax))
	atomic.StoreUint32(&s.waiters, 0)
}

// Value returns the current value (a snapshot).
func (s *Semaphore) Value() uint32 { return atomic.LoadUint32(&s.value) }

// Waiters returns how many goroutines (in all processes) are registered as
// blocked in Wait. A waiter killed while parked stays counted.
func (s *Semaphore) Waiters() uint32 { return atomic.LoadUint32(&s.waiters) }

// Post increments the value and wakes one waiter if any is registered. It
// returns ErrOverflow, changing nothing, if the value is SemValueMax.
func (s *Semaphore) Post() error {
	raceRelease(&s.value)
	for {
		v := atomic.LoadUint32(&s.value)
		if v >= SemValueMax {
			return ErrOverflow
		}
		if atomic.CompareAndSwapUint32(&s.value, v, v+1) {
			break
		}
	}
	// Dekker: the increment above is ordered before this load; a waiter
	// increments waiters before re-checking value. One of us sees the other.
	if atomic.LoadUint32(&s.waiters) != 0 {
		_, _ = futex.Wake(&s.value, 1)
	}
	return nil
}

// TryWait decrements the value if it is positive and reports whether it did.
func (s *Semaphore) TryWait() bool {
	for {
		v := atomic.LoadUint32(&s.value)
		if v == 0 {
			return false
		}
		if atomic.CompareAndSwapUint32(&s.value, v, v-1) {
			raceAcquire(&s.value)
			return true
		}
	}
}

// Wait decrements the value, blocking while it is zero.
func (s *Semaphore) Wait() error { return s.WaitContext(context.Background()) }

// WaitContext is Wait that gives up when ctx is done, returning ctx.Err()
// without decrementing and with its waiter registration undone. It waits
// the way every shmkit wait does (semPolicy's yield, then park); a value
// that is there when ctx ends is taken.
func (s *Semaphore) WaitContext(ctx context.Context) error {
	registered := false
	park := func(ctx context.Context, timeout time.Duration) error {
		if !registered {
			// Dekker: count ourselves, then re-check the value.
			atomic.AddUint32(&s.waiters, 1)
			registered = true
			if atomic.LoadUint32(&s.value) != 0 {
				return nil
			}
		}
		return futex.WaitContextTimeout(ctx, &s.value, 0, timeout)
	}
	err := semPolicy.waitLoop(ctx, s.TryWait, park, parkRecheck, LookAgain)
	if registered {
		atomic.AddUint32(&s.waiters, ^uint32(0))
		// Giving up, we may have consumed a wake meant for a waiter that
		// can now take the value; pass it on.
		if err != nil && atomic.LoadUint32(&s.value) != 0 && atomic.LoadUint32(&s.waiters) != 0 {
			_, _ = futex.Wake(&s.value, 1)
		}
	}
	return err
}
