package shmqueue

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/shmkit/shmkit/internal/crashpoint"
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

type sysvQueue[T any] struct {
	ctl   *control
	slots []slot[T]
	cap   uint64
	mask  uint64
	sem   *sync.SemSet
}

func initSysV(sem *sync.SemSet, cp uint64) error {
	vals := make([]uint16, numSems)
	vals[semSlots] = uint16(cp)
	vals[semLock] = 1
	return sem.SetAll(vals)
}

func (q *sysvQueue[T]) semErr(op string, err error) error {
	if errors.Is(err, sync.ErrRemoved) {
		return fmt.Errorf("shmqueue: %s: %w: semaphore set removed (%w)", op, ErrClosed, err)
	}
	return fmt.Errorf("shmqueue: %s: %w", op, err)
}

// sysvSpin is how many non-blocking attempts acquire makes (yielding the
// CPU between them) while tokens seem to exist, before it takes the lock
// the blocking way.
const sysvSpin = 16

// sysvRecheck bounds how long acquire sleeps waiting for a token before it
// looks under the lock for a dead holder's unfinished business.
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
// a token of sem is available.
func (q *sysvQueue[T]) tokensLikely(sem uint16) bool {
	h, t := q.ctl.head.Load(), q.ctl.tail.Load()
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

// sysvSpinWait is how long acquire watches head and tail for a token
// before it sleeps in the kernel: a sleep and wake-up per item costs more
// than the peer needs to produce (or consume) the next one.
const sysvSpinWait = 50 * time.Microsecond

// spinForToken re-reads head and tail, yielding, for up to sysvSpinWait,
// and reports whether a token of sem now seems to exist.
func (q *sysvQueue[T]) spinForToken(sem uint16) bool {
	start := time.Now()
	for i := 0; ; i++ {
		if i < 16 {
			runtime.Gosched()
		} else {
			schedYield()
		}
		if q.tokensLikely(sem) {
			return true
		}
		if i&7 == 7 && time.Since(start) > sysvSpinWait {
			return false
		}
	}
}

// errNoToken: !block and no token of the kind asked for.
var errNoToken = errors.New("shmqueue: no token")

// acquire takes the lock and one token of sem (token true), or the lock
// alone when the non-blocking attempts failed for long and, under the
// lock, no token exists (token false: the caller checks the state under
// the lock). With !block it returns errNoToken instead of waiting for a
// token.
//
// It never sleeps in a semop that takes the lock or a token: the kernel
// completes a sleeper's semop as soon as it can proceed, so the lock would
// be handed to a process that is not running yet, and every other process
// would queue behind it (a convoy: 4 producers and 4 consumers moved
// ~50k items/s that way). Instead it sleeps in {sem -1, sem +1}, which
// waits for a token without taking it, and then tries again.
func (q *sysvQueue[T]) acquire(ctx context.Context, sem uint16, block bool) (token bool, err error) {
	for spins := 0; ; {
		if !q.tokensLikely(sem) {
			if !block {
				return false, errNoToken
			}
			if q.spinForToken(sem) {
				continue
			}
			// Bounded: a holder that died after its commit and before
			// posting the token leaves the token missing until someone
			// takes the lock and repairs; looking again every
			// sysvRecheck makes that someone us, if nobody else comes.
			tctx, cancel := context.WithTimeout(ctx, sysvRecheck)
			err := q.sem.Op(tctx, sync.SemOp{Num: sem, Delta: -1}, sync.SemOp{Num: sem, Delta: 1})
			cancel()
			if err != nil {
				if cerr := ctx.Err(); cerr != nil {
					return false, cerr
				}
				if errors.Is(err, context.DeadlineExceeded) {
					continue // look at the hint again
				}
				return false, err
			}
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
		if err := q.lockSlow(ctx); err != nil {
			return false, err
		}
		if q.sem.Op(context.Background(), sync.SemOp{Num: sem, Delta: -1, NoWait: true}) == nil {
			return true, nil
		}
		return false, nil
	}
}

func (q *sysvQueue[T]) push(ctx context.Context, vs []T, block bool) (int, error) {
	done := 0
	for done < len(vs) {
		token, err := q.acquire(ctx, semSlots, block)
		if err == errNoToken {
			return done, fmt.Errorf("shmqueue: push: %w", ErrFull)
		}
		if err != nil {
			return done, q.semErr("push", err)
		}
		n, err := q.count()
		if err != nil {
			_ = q.unlock(semSlots, b2i(token))
			return done, err
		}
		if q.ctl.closed.Load() != 0 {
			_ = q.unlock(semSlots, b2i(token))
			return done, fmt.Errorf("shmqueue: push: %w", ErrClosed)
		}
		if !token || n == q.cap {
			if token || n < q.cap {
				// A token without room, or room without a token: the
				// counts drifted (a peer scribbled them). Repair.
				err = q.reconcile()
			}
			_ = q.unlock(semSlots, 0)
			if err != nil {
				return done, q.semErr("push", err)
			}
			if !token && n == q.cap && !block {
				return done, fmt.Errorf("shmqueue: push: %w", ErrFull)
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
			return done, q.semErr("push", err)
		}
	}
	return done, nil
}

func (q *sysvQueue[T]) pop(ctx context.Context, out []T, block bool) (int, error) {
	for {
		token, err := q.acquire(ctx, semItems, block)
		if err == errNoToken {
			return 0, fmt.Errorf("shmqueue: pop: %w", ErrEmpty)
		}
		if err != nil {
			return 0, q.semErr("pop", err)
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
				return 0, q.semErr("pop", err)
			case closed:
				return 0, fmt.Errorf("shmqueue: pop: %w", ErrClosed)
			case !block:
				return 0, fmt.Errorf("shmqueue: pop: %w", ErrEmpty)
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
				return 0, q.semErr("pop", err)
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
			return k, q.semErr("pop", err)
		}
		return k, nil
	}
}

func (q *sysvQueue[T]) closeWrites() error {
	if err := q.lockSlow(context.Background()); err != nil {
		return q.semErr("close writes", err)
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
			return q.semErr("close writes", err)
		}
	}
	if err := q.unlock(0, 0); err != nil {
		return q.semErr("close writes", err)
	}
	return nil
}

func (q *sysvQueue[T]) length() int { return sysvLen(q.ctl, q.cap) }

func sysvLen(ctl *control, cp uint64) int {
	h, t := ctl.head.Load(), ctl.tail.Load()
	if t <= h {
		return 0
	}
	return int(min(t-h, cp))
}

func (q *sysvQueue[T]) stats() (Stats, error) { return sysvStats(q.ctl, q.sem, q.cap) }

func sysvStats(ctl *control, sem *sync.SemSet, cp uint64) (Stats, error) {
	s := Stats{
		Len:     sysvLen(ctl, cp),
		Pushes:  ctl.tail.Load(),
		Pops:    ctl.head.Load(),
		Repairs: ctl.repairs.Load(),
		Closed:  ctl.closed.Load() != 0,
	}
	var err error
	if s.ParkedProducers, err = sem.Waiting(semSlots); err != nil {
		return s, fmt.Errorf("shmqueue: stats: %w", err)
	}
	if s.ParkedConsumers, err = sem.Waiting(semItems); err != nil {
		return s, fmt.Errorf("shmqueue: stats: %w", err)
	}
	return s, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
