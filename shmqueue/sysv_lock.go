package shmqueue

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/sync"
)

// sysvSpin is how many non-blocking attempts acquire makes (yielding the
// CPU between them) while tokens seem to exist, before it takes the lock
// the blocking way.
const sysvSpin = 16

// sysvRecheck bounds how long waitToken stays parked without a notify
// before it looks at head and tail again (a holder that died after its
// commit never notifies).
const sysvRecheck = 20 * time.Millisecond

// lockFast makes one non-blocking attempt to take the lock and one token
// of sem (slots or items) in one atomic semop. It fails with
// sync.ErrWouldBlock if the lock is busy, if dirty is non-zero (a holder
// died), or if no token is available.
func (q *sysvQueue[T]) lockFast(sem uint16) error {
	return q.sem.Op(context.Background(),
		sync.SemOp{Num: semLock, Delta: -1, Undo: true, NoWait: true},
		sync.SemOp{Num: semDirty, Delta: 0, NoWait: true},
		sync.SemOp{Num: semDirty, Delta: 1},
		sync.SemOp{Num: sem, Delta: -1, NoWait: true},
	)
}

// tokensLikely guesses from head and tail (read without the lock) whether
// a token of sem is available. A "no" is exact at one instant, which a
// Try operation's ErrEmpty or ErrFull needs (linearizability): the cursor
// the other side moves is read first, so for items tail(now) <= head(then)
// means the queue was empty then, and for slots tail(then) - head(now) >=
// capacity means it is full now (both cursors only grow).
func (q *sysvQueue[T]) tokensLikely(sem uint16) bool {
	var h, t uint64
	if sem == semItems {
		h = q.ctl.head.Load()
		t = q.ctl.tail.Load()
	} else {
		t = q.ctl.tail.Load()
		h = q.ctl.head.Load()
	}
	if q.ctl.closed.Load() != 0 || t < h || t-h > q.cap {
		return true // closed (bonus tokens), or garbage for the locked path to report
	}
	if sem == semItems {
		return t > h
	}
	return t-h < q.cap
}

// lockSlow takes the lock alone and repairs the counting semaphores if the
// previous holder died inside.
func (q *sysvQueue[T]) lockSlow(ctx context.Context) error {
	if err := q.sem.Op(ctx,
		sync.SemOp{Num: semLock, Delta: -1, Undo: true},
		sync.SemOp{Num: semDirty, Delta: 1},
	); err != nil {
		return err
	}
	d, err := q.sem.GetVal(semDirty)
	if err == nil && d != 1 {
		err = q.reconcile()
	}
	if err != nil {
		_ = q.unlock(0, 0)
		return err
	}
	return nil
}

// lockSlowFor is lockSlow for acquire: a blocking call waits for the
// lock as long as ctx allows; a Try operation waits out the live holder
// for at most TryStallLimit (ErrPeerStalled), never for tokens.
func (q *sysvQueue[T]) lockSlowFor(ctx context.Context, block bool) error {
	if block {
		return q.lockSlow(ctx)
	}
	tctx, cancel := context.WithTimeout(context.Background(), TryStallLimit)
	defer cancel()
	err := q.lockSlow(tctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: the semaphore set's lock stayed held", ErrPeerStalled)
	}
	return err
}

// reconcile recomputes slots and items from head and tail. The caller
// holds the lock and no token, so nobody holds one.
func (q *sysvQueue[T]) reconcile() error {
	n, err := q.count()
	if err != nil {
		return err
	}
	bonus := 0
	if q.ctl.closed.Load() != 0 {
		bonus = closeBonus
	}
	if crashpoint.Enabled {
		crashpoint.Hit("shmqueue.sysv-reconcile")
	}
	if err := q.sem.SetVal(semItems, int(n)+bonus); err != nil {
		return err
	}
	if err := q.sem.SetVal(semSlots, int(q.cap-n)+bonus); err != nil {
		return err
	}
	if err := q.sem.SetVal(semDirty, 1); err != nil {
		return err
	}
	q.ctl.repairs.Add(1)
	return nil
}

// unlock returns k tokens to sem (if k > 0), clears dirty and releases the
// lock, in one atomic semop.
func (q *sysvQueue[T]) unlock(sem uint16, k int) error {
	ops := [3]sync.SemOp{
		{Num: semDirty, Delta: -1},
		{Num: semLock, Delta: 1, Undo: true},
		{Num: sem, Delta: int16(k)},
	}
	n := 2
	if k > 0 {
		n = 3
	}
	return q.sem.Op(context.Background(), ops[:n]...)
}

// count returns tail-head, validated.
func (q *sysvQueue[T]) count() (uint64, error) {
	h, t := q.ctl.head.Load(), q.ctl.tail.Load()
	if t < h || t-h > q.cap || t >= posLimit {
		return 0, corruptf("SysV head %#x, tail %#x, capacity %d", h, t, q.cap)
	}
	return t - h, nil
}

// takeExtra takes up to k-1 more tokens of sem without blocking (the
// holder already has one); it returns how many tokens it holds in total.
func (q *sysvQueue[T]) takeExtra(sem uint16, k int) int {
	if k <= 1 {
		return 1
	}
	if q.sem.Op(context.Background(), sync.SemOp{Num: sem, Delta: -int16(k - 1), NoWait: true}) != nil {
		return 1
	}
	return k
}

// errNoToken: !block and no token of the kind asked for.
var errNoToken = errors.New("no token")

// acquire takes the lock and one token of sem (token true), or the lock
// alone when the non-blocking attempts failed for long and, under the
// lock, no token exists (token false: the caller checks the state under
// the lock). With !block it returns errNoToken instead of waiting for a
// token.
//
// It never sleeps in a semop that takes a token: the kernel completes a
// sleeper's semop as soon as it can proceed, so the lock would be handed
// to a process that is not running yet, and every other process would
// queue behind it (a convoy: 4 producers and 4 consumers moved ~50k
// items/s that way). Instead, while head and tail say no token exists, it
// waits on the items or slots notifier (waitToken) and then tries again.
func (q *sysvQueue[T]) acquire(ctx context.Context, sem uint16, block bool) (token bool, err error) {
	for spins := 0; ; {
		if !q.tokensLikely(sem) {
			if !block {
				return false, errNoToken
			}
			if err := q.waitToken(ctx, sem); err != nil {
				return false, err
			}
			continue
		}
		err := q.lockFast(sem)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, sync.ErrWouldBlock) {
			return false, err
		}
		if spins++; spins < sysvSpin {
			// The holder may be a goroutine of this process waiting for a
			// P, or another process waiting for a CPU: let both run.
			runtime.Gosched()
			schedYield()
			continue
		}
		// The lock stayed busy, or a holder died (dirty), or the hint was
		// wrong: take the lock the blocking way and look under it. Under
		// the lock nobody else holds a token, so one exists exactly when
		// the state says so.
		if err := q.lockSlowFor(ctx, block); err != nil {
			return false, err
		}
		if q.sem.Op(context.Background(), sync.SemOp{Num: sem, Delta: -1, NoWait: true}) == nil {
			return true, nil
		}
		return false, nil
	}
}

// waitToken waits, with the handle's WaitPolicy, until head and tail say
// a token of sem exists (or the queue is closed), parking on the notifier
// that the other side signals after posting tokens. A holder that died
// between its commit and its post never notifies: parks are bounded by
// sysvRecheck, and the next look at head and tail sees its commit. The
// whole wait runs under the fault guard: a memory fault returns the
// handle's fault error.
func (q *sysvQueue[T]) waitToken(ctx context.Context, sem uint16) (err error) {
	n, consumer := &q.ctl.slots, false
	if sem == semItems {
		n, consumer = &q.ctl.items, true
	}
	defer q.fg.Guard(&err, opName(consumer), q.fg.Enable())
	// The set may be removed (ipcrm) while nobody touches it: look at it
	// on every recheck, so a waiter says so instead of waiting on.
	var gone error
	ready := func() bool { return gone != nil || q.tokensLikely(sem) }
	poll := func() bool {
		if _, err := q.sem.GetVal(semLock); errors.Is(err, sync.ErrRemoved) {
			gone = q.semErr(err)
		}
		return true
	}
	q.enter(consumer)
	defer q.leave(consumer)
	err = n.WaitPoll(ctx, q.policy, ready, sysvRecheck, poll)
	if err == nil {
		err = gone
	}
	return err
}

// schedYield gives the CPU to another runnable thread or process, if any:
// a lock holder in another process may be waiting for this very core.
func schedYield() { _, _, _ = unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }
