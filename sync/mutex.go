package sync

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/internal/proc"
)

// Mutex is a robust, process-shared mutual exclusion lock that lives in a
// shared segment. The zero value is unlocked. A Mutex must not be copied
// after first use.
//
// Ownership belongs to a process, not a goroutine: any goroutine of the
// process that locked it may unlock it (as with Go's sync.Mutex). If the
// holding process dies, the next Lock in any process returns ErrOwnerDead
// while holding the lock; see the package documentation.
//
// Layout (32 bytes, 8-aligned, asserted in tests): the robust-list entry,
// the futex word, the consistency state and the last holder's identity.
type Mutex struct {
	// next is the robust-list link: the address, in the holder's address
	// space, of the next entry on the holder's keeper list (or of the list
	// head). A lock held through a per-P keeper's pending slot is on no
	// list: then next is that keeper's byte offset in the keeper array (a
	// multiple of 128 naming slot 1..numSlots-1), Unlock's hint, which the
	// kernel never reads and Unlock checks before it believes it.
	// Meaningful only to the holder; only the holder writes it.
	next uint64
	// word is the futex word: 0 when free, else the holder's keeper TID
	// | futex.Waiters | futex.OwnerDied, or notRecoverable.
	word uint32
	// state is mutexConsistent or mutexInconsistent (taken with
	// ErrOwnerDead and not yet marked consistent). Written by the holder.
	state uint32
	// The last holder's keeper TID and process identity, written after
	// acquisition (and only when they change, so a process re-locking the
	// same mutex writes nothing). Diagnostics: stale while unlocked.
	// ownerTID and ownerPID are also read and written as one 64-bit word
	// (recordOwner).
	ownerTID   int32
	ownerPID   int32
	ownerStart uint64
}

const (
	mutexConsistent   = 0
	mutexInconsistent = 1

	// notRecoverable is the terminal word of a mutex unlocked while
	// inconsistent. Its TID field is all ones, which no thread has
	// (pid_max <= 2^22), so no CAS from 0 and no kernel robust-list walk
	// ever matches it.
	notRecoverable = futex.TIDMask
)

// DeadOwnerPoll is how often a blocked Lock wakes to check, independently of
// the kernel's robust list, whether the thread named in the lock word still
// exists. The kernel normally reports a dead holder within a millisecond;
// this bounds the delay when it cannot (a holder killed between taking the
// word and linking it, or a robust list broken by a peer).
const DeadOwnerPoll = 100 * time.Millisecond

// deadOwnerPoll is DeadOwnerPoll, changeable by tests (export_test.go) so
// that a lost wake, which costs a waiter one poll interval, stands out from
// scheduling delays on a loaded machine.
var deadOwnerPoll = DeadOwnerPoll

// fallbackSteals counts locks taken over through the /proc check (tests).
var fallbackSteals atomic.Uint64

// ErrNotInconsistent is returned by MarkConsistent when the mutex is not
// held by this process in the owner-dead state.
var ErrNotInconsistent = errors.New("shmkit/sync: MarkConsistent on a mutex not held in owner-dead state")

// Lock acquires m, blocking until it is available. It returns nil, or
// ErrOwnerDead (the caller holds the lock; the previous holder died: repair
// the protected data, call MarkConsistent, then Unlock), or
// ErrNotRecoverable (the caller does not hold the lock; nobody ever will).
// Uncontended, it makes no system call.
func (m *Mutex) Lock() error { return m.lock(context.Background()) }

// LockContext is Lock that gives up when ctx is done, returning ctx.Err()
// without holding the lock. A free lock is taken even if ctx is already
// done. Cancellation is noticed at once (futex_waitv on the lock word and a
// process-local cancel word).
func (m *Mutex) LockContext(ctx context.Context) error { return m.lock(ctx) }

// TryLock acquires m if it is free, or if its holder died with the kernel
// reporting it (then it returns true, ErrOwnerDead). It never blocks and
// never makes a system call; unlike Lock it does not run the /proc fallback
// check for holders that died unreported.
func (m *Mutex) TryLock() (bool, error) {
	v := atomic.LoadUint32(&m.word)
	switch {
	case v == notRecoverable:
		return false, ErrNotRecoverable
	case v&futex.OwnerDied != 0:
		if m.acquire(v, v&futex.Waiters) {
			atomic.StoreUint32(&m.state, mutexInconsistent)
			return true, ErrOwnerDead
		}
	case v&futex.TIDMask == 0:
		if m.acquire(v, v&futex.Waiters) {
			return true, nil
		}
	}
	return false, nil
}

// mutexPolicy is how a blocked Lock waits: park at once (a lock holder's
// critical section is usually longer than a spin would pay for), waking
// every DeadOwnerPoll to check the holder.
var mutexPolicy = ParkOnly

func (m *Mutex) lockSlow(ctx context.Context) error {
	var (
		got    bool
		result error
		waited bool
	)
	// try takes the lock if the word allows it, recording the outcome.
	try := func() bool {
		if got {
			return true
		}
		for {
			v := atomic.LoadUint32(&m.word)
			switch {
			case v == notRecoverable:
				got, result = true, ErrNotRecoverable
				return true
			case v&futex.OwnerDied != 0:
				// The kernel reported the holder's death. Take over,
				// keeping the waiters bit for whoever else is blocked.
				if !m.acquire(v, v&futex.Waiters) {
					continue
				}
				atomic.StoreUint32(&m.state, mutexInconsistent)
				got, result = true, ErrOwnerDead
				return true
			case v&futex.TIDMask == 0:
				// Free. After sleeping we cannot know whether others
				// still sleep, so keep the waiters bit set (glibc does
				// the same).
				bits := v & futex.Waiters
				if waited {
					bits = futex.Waiters
				}
				if !m.acquire(v, bits) {
					continue
				}
				got = true
				return true
			}
			return false
		}
	}
	park := func(ctx context.Context, timeout time.Duration) error {
		v := atomic.LoadUint32(&m.word)
		if v == notRecoverable || v&futex.OwnerDied != 0 || v&futex.TIDMask == 0 {
			return nil
		}
		if v&futex.Waiters == 0 {
			if !atomic.CompareAndSwapUint32(&m.word, v, v|futex.Waiters) {
				return nil
			}
			v |= futex.Waiters
		}
		waited = true
		return futex.WaitContextTimeout(ctx, &m.word, v, timeout)
	}
	// stealDead takes the lock from a holder that died unreported (its
	// robust registration was broken or forgotten): only on definite
	// evidence that the keeper thread named in the word no longer exists.
	stealDead := func() bool {
		v := atomic.LoadUint32(&m.word)
		tid := v & futex.TIDMask
		if v == notRecoverable || tid == 0 || v&futex.OwnerDied != 0 || !proc.ThreadDead(int32(tid)) {
			return false
		}
		if m.acquire(v, futex.Waiters) {
			fallbackSteals.Add(1)
			atomic.StoreUint32(&m.state, mutexInconsistent)
			got, result = true, ErrOwnerDead
		}
		return true
	}
	if err := mutexPolicy.waitLoop(ctx, try, park, deadOwnerPoll, stealDead); err != nil {
		if waited {
			// An Unlock may have woken us just as ctx ended, and a
			// barging locker may have taken the lock (clearing the
			// waiters bit) before we could: pass the wake on, or the
			// waiters still parked would sleep until DeadOwnerPoll. The
			// one woken re-checks and, if it must sleep, sets the bit.
			_, _ = futex.Wake(&m.word, 1)
		}
		return err
	}
	return result
}

// wakeOne wakes one process blocked in Lock.
func (m *Mutex) wakeOne() { _, _ = futex.Wake(&m.word, 1) }

// unlockSlow is Unlock for a mutex on the shared list, held in the
// owner-dead state, scribbled by a peer, or not held at all.
func (m *Mutex) unlockSlow() {
	newWord := uint32(0)
	if atomic.LoadUint32(&m.state) == mutexInconsistent {
		newWord = notRecoverable
	}
	raceRelease(&m.word)
	old, ok := m.release(newWord)
	if !ok {
		panic("shmkit/sync: Unlock of a Mutex not held by this process")
	}
	if newWord == notRecoverable {
		_, _ = futex.Wake(&m.word, 0)
	} else if old&futex.Waiters != 0 {
		m.wakeOne()
	}
}

// MarkConsistent declares the data protected by m repaired after Lock or
// TryLock returned ErrOwnerDead. The caller must hold m; it then unlocks
// normally. It returns ErrNotInconsistent if m is not held by this process
// in that state.
func (m *Mutex) MarkConsistent() error {
	v := atomic.LoadUint32(&m.word)
	if v == notRecoverable || !ownedBySelf(v) ||
		atomic.LoadUint32(&m.state) != mutexInconsistent {
		return ErrNotInconsistent
	}
	atomic.StoreUint32(&m.state, mutexConsistent)
	return nil
}

// MutexState is a snapshot of a Mutex for diagnostics (shmctl, doctor).
type MutexState struct {
	// Locked: a holder's TID is in the word. After the kernel reports a
	// holder's death the word holds only OwnerDead (and Waiters), so a
	// dead-owner mutex is OwnerDead && !Locked until someone takes it.
	Locked   bool
	OwnerTID int32   // keeper TID in the lock word (0 when unlocked)
	Owner    proc.ID // last recorded holder process; stale when unlocked
	// OwnerDead: the kernel flagged the holder's death, or the thread
	// named in the word no longer exists. The next Lock gets ErrOwnerDead.
	OwnerDead bool
	// Inconsistent: held by a process that got ErrOwnerDead and has not
	// called MarkConsistent yet.
	Inconsistent   bool
	NotRecoverable bool
	Waiters        bool // some process may be blocked in Lock
	// Mine: held by this process (the word names one of its keepers).
	Mine bool
}

// State returns a snapshot of m. It may read /proc (to check the holder's
// thread) and is meant for diagnostics, not synchronization.
func (m *Mutex) State() MutexState {
	v := atomic.LoadUint32(&m.word)
	st := MutexState{
		Owner: proc.ID{PID: atomic.LoadInt32(&m.ownerPID), Start: atomic.LoadUint64(&m.ownerStart)},
	}
	if v == notRecoverable {
		st.NotRecoverable = true
		return st
	}
	st.OwnerTID = int32(v & futex.TIDMask)
	st.Locked = st.OwnerTID != 0
	st.Waiters = v&futex.Waiters != 0
	st.Mine = st.Locked && ownedBySelf(v)
	st.OwnerDead = v&futex.OwnerDied != 0 || (st.Locked && proc.ThreadDead(st.OwnerTID))
	st.Inconsistent = st.Locked && !st.OwnerDead && atomic.LoadUint32(&m.state) == mutexInconsistent
	return st
}
