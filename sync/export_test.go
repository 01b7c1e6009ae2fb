package sync

import (
	"sync/atomic"
	"time"
)

// FallbackSteals exposes the count of locks taken over through the /proc
// fallback check, so tests can tell which detector fired.
func FallbackSteals() uint64 { return fallbackSteals.Load() }

// SetSharedListOnly forces every lock onto the shared robust list.
func SetSharedListOnly(on bool) {
	v := uint32(0)
	if on {
		v = 1
	}
	atomic.StoreUint32(&sharedOnly, v)
}

// SharedListLen returns how many locks are on the shared robust list.
func SharedListLen() int {
	listLock(1)
	defer listUnlock()
	return len(keepers.mirror)
}

// ScribbleWord overwrites m's lock word the way a hostile peer could.
func ScribbleWord(m *Mutex, v uint32) { atomic.StoreUint32(&m.word, v) }

// SetSeqCount sets c's raw count, standing in for a long run of writes.
func SetSeqCount(c *SeqCount, v uint64) { atomic.StoreUint64(&c.seq, v) }

// SetDeadOwnerPoll sets how often a blocked Lock re-checks its holder, for
// this process, and returns the previous value. Call it before any Lock.
func SetDeadOwnerPoll(d time.Duration) time.Duration {
	prev := deadOwnerPoll
	deadOwnerPoll = d
	return prev
}

// ScribbleNext overwrites m's robust-list link (for a lock held through a
// per-P keeper, Unlock's hint) the way a hostile peer could.
func ScribbleNext(m *Mutex, v uint64) { atomic.StoreUint64(&m.next, v) }

// NextOf returns m's robust-list link or hint.
func NextOf(m *Mutex) uint64 { return atomic.LoadUint64(&m.next) }

// ClaimedKeepers returns how many per-P keepers have a lock in their
// pending slot.
func ClaimedKeepers() int {
	n := 0
	for i := 1; i < numSlots; i++ {
		if atomic.LoadUint64(&keepers.slots[i].head.ListOpPending) != 0 {
			n++
		}
	}
	return n
}
