package shmmap

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shmkit/shmkit/internal/proc"
	shsync "github.com/shmkit/shmkit/sync"
)

// lock takes shard sh's writer lock, repairing the shard if the previous
// holder died (or left a mutation unfinished). On error the lock is not
// held.
func (m *Map[K, V]) lock(sh uint64) error {
	if m.readOnly {
		return fmt.Errorf("%w: shard %d: cannot lock through a read-only mapping (a writer is active, stalled or dead)", ErrReadOnly, sh)
	}
	ctl := m.ctl(sh)
	// TryLock is the uncontended fast path (no syscall, no timer); only a
	// contended lock pays for a bounded wait.
	got, err := ctl.Mu.TryLock()
	if got && err == nil && ctl.RedoOp == opNone && !ctl.Seq.Writing() {
		return nil
	}
	return m.lockRest(sh, got, err)
}

// lockRest is lock past an uncontended TryLock (got, err: its result):
// the wait, the repair, the owner-death protocol. It runs under the fault
// guard; after a fault the lock is left as it is (its word went with the
// truncated pages) and the fault error returned.
func (m *Map[K, V]) lockRest(sh uint64, got bool, err error) (lerr error) {
	defer m.fg.Guard(&lerr, "lock", m.fg.Enable())
	ctl := m.ctl(sh)
	if !got && err == nil {
		err = m.lockSlow(sh)
	}
	if errors.Is(err, ErrTruncated) {
		return err // the lock word went with the truncated pages
	}
	switch {
	case err == nil:
		if ctl.RedoOp == opNone && !ctl.Seq.Writing() {
			return nil
		}
		// A mutation was left unfinished without an owner-death report
		// (a scribbled lock word): repair all the same.
		if rerr := m.repair(sh); rerr != nil {
			if errors.Is(rerr, ErrTruncated) {
				return rerr
			}
			ctl.Mu.Unlock()
			return rerr
		}
		return nil
	case errors.Is(err, shsync.ErrOwnerDead):
		rerr := m.repair(sh)
		if errors.Is(rerr, ErrTruncated) {
			return rerr
		}
		if cerr := ctl.Mu.MarkConsistent(); cerr != nil && rerr == nil {
			// We hold the lock in owner-dead state: only a peer that
			// rewrote the lock word under us makes this fail.
			rerr = fmt.Errorf("%w: shard %d: lock word changed under its holder: mark consistent: %w", ErrCorrupt, sh, cerr)
		}
		if rerr != nil {
			ctl.Mu.Unlock()
			return rerr
		}
		return nil
	case errors.Is(err, ErrCorrupt) || errors.Is(err, ErrLockTimeout):
		return err // from lockSlow, already saying which shard
	default:
		return fmt.Errorf("shard %d: lock: %w", sh, err)
	}
}

func (m *Map[K, V]) unlock(sh uint64) { m.ctl(sh).Mu.Unlock() }

// lockCheckInterval is how often a blocked lock re-examines the holder. It
// must leave the Mutex room for its own dead-holder poll (DeadOwnerPoll),
// which restarts with every LockContext call.
const lockCheckInterval = 2*shsync.DeadOwnerPoll + 50*time.Millisecond

// lockSlow waits for a contended shard lock, in slices of
// lockCheckInterval. Between slices it checks that the lock word names a
// thread of the process recorded as the holder, and that process is alive:
// a word that names some other live thread (a scribbled segment) would
// otherwise look held forever, since the holder never dies. Two
// inconsistent observations of the same word and record, a slice apart
// (a new holder records itself right after taking the word), give
// ErrCorrupt. A consistent but live holder is waited for up to the lock
// timeout, then ErrLockTimeout.
//
// It runs under the fault guard, as does the rest of a lock but its
// uncontended TryLock.
func (m *Map[K, V]) lockSlow(sh uint64) (err error) {
	defer m.fg.Guard(&err, "lock", m.fg.Enable())
	ctl := m.ctl(sh)
	deadline := time.Now().Add(m.lockTimeout)
	var suspect shsync.MutexState
	suspected := false
	for {
		wait := min(lockCheckInterval, time.Until(deadline))
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		err := ctl.Mu.LockContext(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		st := ctl.Mu.State()
		if bogusHolder(st) {
			if suspected && st.OwnerTID == suspect.OwnerTID && st.Owner == suspect.Owner {
				return fmt.Errorf("%w: shard %d: lock word names thread %d, which is not a live thread of its recorded holder %v",
					ErrCorrupt, sh, st.OwnerTID, st.Owner)
			}
			suspect, suspected = st, true
		} else {
			suspected = false
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w: shard %d: lock held for over %v by thread %d of %v: %w",
				ErrLockTimeout, sh, m.lockTimeout, st.OwnerTID, st.Owner, err)
		}
	}
}

// bogusHolder reports whether a held lock's word and owner record
// certainly disagree: the recorded process is certainly dead, or the thread
// in the word is certainly not one of its threads. Both come from
// internal/proc and count only definite evidence (ESRCH, a zombie, a
// start-time mismatch, a visible /proc/PID/task without the TID): under
// any doubt (hidepid, EPERM, an unreadable /proc) the holder is taken at
// its word and waited for, up to the lock timeout, never reported bogus.
// (A dead thread in the word is the Mutex's own business: it reports the
// owner dead.)
func bogusHolder(st shsync.MutexState) bool {
	if !st.Locked || st.OwnerDead || st.NotRecoverable {
		return false
	}
	return proc.Dead(st.Owner) || proc.NotThreadOf(st.Owner.PID, st.OwnerTID)
}
