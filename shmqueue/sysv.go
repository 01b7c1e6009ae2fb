package shmqueue

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/internal/faultguard"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/sync"
)

// SysV semaphore numbers. See the package documentation for the protocol.
const (
	semSlots = 0 // free slots (+ closeBonus once closed)
	semItems = 1 // queued items (+ closeBonus once closed)
	semLock  = 2 // binary lock; the only semaphore operated with SEM_UNDO
	semDirty = 3 // 1 while a holder is inside; left >= 1 by a dead holder
	numSems  = 4

	// closeBonus is added to both counting semaphores by CloseWrites so
	// that every blocked producer and consumer wakes and sees the flag.
	closeBonus = 8192
)

// sysvControl is region 0 of a SysV queue (region 1 is the slot array;
// slots' seq words are unused). head, tail and closed are written only
// under the semaphore lock and read without it by Len, Stats and waiters.
// Offsets are asserted in layout_unsafe_test.go.
type sysvControl struct {
	head    atomic.Uint64 // next position to pop
	tail    atomic.Uint64 // next position to push; the push commit point
	closed  atomic.Uint32 // CloseWrites happened
	_       uint32
	repairs atomic.Uint64 // dead lock holders repaired
	_       [layout.LineSize - 32]byte
	// items is where consumers (and WaitSets) park until tail moves past
	// head; producers notify it after posting their items.
	items sync.Notifier
	_     [layout.LineSize - 8]byte
	// slots is where producers park until there is room; consumers notify
	// it after posting the slots they freed.
	slots sync.Notifier
	_     [layout.LineSize - 8]byte
}

// sysvControlSize is the size of a SysV queue's control region.
var sysvControlSize = uint64(reflect.TypeFor[sysvControl]().Size())

// sysvQueue is the process-local handle of the SysV backend.
type sysvQueue[T any] struct {
	ctl    *sysvControl
	slots  []slot[T]
	cap    uint64
	mask   uint64
	sem    *sync.SemSet
	policy sync.WaitPolicy
	fg     *faultguard.Latch // the handle's (Queue.fg)
	waitCounter
}

func initSysV(sem *sync.SemSet, cp uint64) error {
	vals := make([]uint16, numSems)
	vals[semSlots] = uint16(cp)
	vals[semLock] = 1
	return sem.SetAll(vals)
}

// semErr reports the semaphore set removed under us (by ipcrm, say) as
// what it is: ErrSemRemoved, naming the set.
func (q *sysvQueue[T]) semErr(err error) error {
	if errors.Is(err, sync.ErrRemoved) {
		return semRemoved(q.sem.Key(), q.sem.ID(), err)
	}
	return err
}

// semRemoved is the error of an operation on a queue whose semaphore set
// (key, id) is gone.
func semRemoved(key int32, id int, cause error) error {
	return fmt.Errorf("%w: semaphore set %s is gone (%v); the queue cannot be used any more: remove it (shmctl rm SPEC, or shmqueue.Remove) and create it again",
		ErrSemRemoved, semName(key, id), cause)
}

// semName names a semaphore set as ipcs and ipcrm do: by key (-S) and id (-s).
func semName(key int32, id int) string {
	if key == 0 {
		return fmt.Sprintf("id %d (IPC_PRIVATE)", id)
	}
	return fmt.Sprintf("key %#x id %d", uint32(key), id)
}

func (q *sysvQueue[T]) push(ctx context.Context, vs []T, block bool) (int, error) {
	done := 0
	for done < len(vs) {
		token, err := q.acquire(ctx, semSlots, block)
		if err == errNoToken {
			return done, ErrFull
		}
		if err != nil {
			return done, q.semErr(err)
		}
		n, err := q.count()
		if err != nil {
			_ = q.unlock(semSlots, b2i(token))
			return done, err
		}
		if q.ctl.closed.Load() != 0 {
			_ = q.unlock(semSlots, b2i(token))
			return done, ErrClosed
		}
		if !token || n == q.cap {
			if token || n < q.cap {
				// A token without room, or room without a token: the
				// counts drifted (a peer scribbled them). Repair.
				err = q.reconcile()
			}
			_ = q.unlock(semSlots, 0)
			if err != nil {
				return done, q.semErr(err)
			}
			if !token && n == q.cap && !block {
				return done, ErrFull
			}
			continue
		}
		k := q.takeExtra(semSlots, int(min(uint64(len(vs)-done), q.cap-n, closeBonus)))
		t := q.ctl.tail.Load()
		for i := 0; i < k; i++ {
			q.slots[(t+uint64(i))&q.mask].val = vs[done+i]
		}
		q.ctl.tail.Store(t + uint64(k)) // the commit point
		if crashpoint.Enabled {
			crashpoint.Hit("shmqueue.sysv-push-committed")
		}
		done += k
		if err := q.unlock(semItems, k); err != nil {
			return done, q.semErr(err)
		}
		q.ctl.items.Notify() // one load when nobody is parked
	}
	return done, nil
}

func (q *sysvQueue[T]) pop(ctx context.Context, out []T, block bool) (int, error) {
	for {
		token, err := q.acquire(ctx, semItems, block)
		if err == errNoToken {
			return 0, ErrEmpty
		}
		if err != nil {
			if errors.Is(err, sync.ErrRemoved) && q.ctl.closed.Load() != 0 && q.ctl.head.Load() == q.ctl.tail.Load() {
				// Closed for writes and drained, and then removed (the
				// producer's cleanup): the stream ended, nothing was lost.
				return 0, ErrClosed
			}
			return 0, q.semErr(err)
		}
		n, err := q.count()
		if err != nil {
			_ = q.unlock(semItems, b2i(token))
			return 0, err
		}
		if n == 0 {
			closed := q.ctl.closed.Load() != 0
			if token && !closed {
				err = q.reconcile() // a token without an item: repair
			}
			_ = q.unlock(semItems, b2i(token && closed))
			switch {
			case err != nil:
				return 0, q.semErr(err)
			case closed:
				return 0, ErrClosed
			case !block:
				return 0, ErrEmpty
			}
			continue
		}
		if !token {
			// Items but no token under the lock: the counts drifted.
			err := q.reconcile()
			if uerr := q.unlock(semItems, 0); err == nil {
				err = uerr
			}
			if err != nil {
				return 0, q.semErr(err)
			}
			continue
		}
		k := q.takeExtra(semItems, int(min(uint64(len(out)), n, closeBonus)))
		h := q.ctl.head.Load()
		for i := 0; i < k; i++ {
			out[i] = q.slots[(h+uint64(i))&q.mask].val
		}
		q.ctl.head.Store(h + uint64(k)) // the commit point
		if crashpoint.Enabled {
			crashpoint.Hit("shmqueue.sysv-pop-committed")
		}
		if err := q.unlock(semSlots, k); err != nil {
			return k, q.semErr(err)
		}
		q.ctl.slots.Notify()
		return k, nil
	}
}

func (q *sysvQueue[T]) closeWrites() error {
	if err := q.lockSlow(context.Background()); err != nil {
		return q.semErr(err)
	}
	if q.ctl.closed.Load() == 0 {
		n, err := q.count()
		if err != nil {
			_ = q.unlock(0, 0)
			return err
		}
		q.ctl.closed.Store(1)
		err = q.sem.SetVal(semItems, int(n)+closeBonus)
		if err == nil {
			err = q.sem.SetVal(semSlots, int(q.cap-n)+closeBonus)
		}
		if err != nil {
			_ = q.unlock(0, 0)
			return q.semErr(err)
		}
	}
	if err := q.unlock(0, 0); err != nil {
		return q.semErr(err)
	}
	q.ctl.items.Notify()
	q.ctl.slots.Notify()
	return nil
}

func (q *sysvQueue[T]) length() int { return sysvLen(q.ctl, q.cap) }

func sysvLen(ctl *sysvControl, cp uint64) int {
	h, t := ctl.head.Load(), ctl.tail.Load()
	if t <= h {
		return 0
	}
	return int(min(t-h, cp))
}

func (q *sysvQueue[T]) stats() Stats {
	st := sysvStats(q.ctl, q.cap)
	st.SemKey, st.SemID = q.sem.Key(), q.sem.ID()
	if _, err := q.sem.GetVal(semLock); errors.Is(err, sync.ErrRemoved) {
		st.SemRemoved = true
	}
	return st
}

func sysvStats(ctl *sysvControl, cp uint64) Stats {
	return Stats{
		Len:              sysvLen(ctl, cp),
		Pushes:           ctl.tail.Load(),
		Pops:             ctl.head.Load(),
		ProducersWaiting: ctl.slots.Waiting(),
		ConsumersWaiting: ctl.items.Waiting(),
		Repairs:          ctl.repairs.Load(),
		Closed:           ctl.closed.Load() != 0,
	}
}

// waitSource: an item can be popped, or the queue is closed (TryPop then
// drains it and says ErrClosed). Producers notify items after every push.
func (q *sysvQueue[T]) waitSource() (*sync.Notifier, func() bool) {
	return &q.ctl.items, func() bool { return q.ctl.tail.Load() != q.ctl.head.Load() || q.ctl.closed.Load() != 0 }
}

// detach: a SysV handle holds nothing in the segment.
func (q *sysvQueue[T]) detach() {}

func (q *sysvQueue[T]) pushOne(ctx context.Context, v T, block bool) error {
	one := [1]T{v}
	_, err := q.push(ctx, one[:], block)
	return err
}

func (q *sysvQueue[T]) popOne(ctx context.Context, block bool) (T, error) {
	var one [1]T
	_, err := q.pop(ctx, one[:], block)
	return one[0], err
}
