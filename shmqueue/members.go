package shmqueue

import (
	"runtime"
	stdsync "sync"
	"time"

	"github.com/shmkit/shmkit/internal/atomicx"
	"github.com/shmkit/shmkit/internal/proc"
)

// attach claims a member record for this handle: a free one, else one
// whose owner is dead. The dead owner's lanes are cleared after the claim;
// until then its stale announcements look live, which can only delay a
// repair, never cause a wrong one.
func (q *futexQueue[T]) attach() error {
	q.self = proc.Self().Word()
	for i := range q.members {
		m := &q.members[i]
		o := m.owner.Load()
		if o == 0 || o == q.self || !q.ownerDead(o) || !m.owner.CompareAndSwap(o, q.self) {
			continue
		}
		clearLanes(m)
		m.owner.Store(0)
	}
	for i := range q.members {
		m := &q.members[i]
		if m.owner.Load() != 0 || !m.owner.CompareAndSwap(0, q.self) {
			continue
		}
		clearLanes(m)
		q.me = m
		return nil
	}
	return ErrTooManyHandles
}

// clearLanes clears the stale claims of a record this handle now owns (the
// claimants are dead, so their positions will be repaired).
func clearLanes(m *member) {
	for j := range m.lanes {
		m.lanes[j].Store(0)
	}
}

// detach releases the member record. No operation may be in flight.
func (q *futexQueue[T]) detach() {
	if q.me == nil {
		return
	}
	for j := range q.me.lanes {
		q.me.lanes[j].Store(0)
	}
	q.me.owner.CompareAndSwap(q.self, 0)
	q.me = nil
}

// announce stores the claim word w in this handle's lane (taking a free
// lane first if lane < 0: a lane is free when its word is 0, and a CAS from
// 0 both takes and announces) and returns the lane. Lanes are held only for
// the few instructions of one claim; when all are busy, yield and retry.
// If they stay busy for lanesBusyLimit, which only a peer writing into
// this handle's record can cause, it fails with ErrCorrupt.
func (q *futexQueue[T]) announce(lane int, w uint64) (int, error) {
	if lane >= 0 {
		q.me.lanes[lane].Store(w)
		return lane, nil
	}
	var since time.Time
	for round := 0; ; round++ {
		for i := range q.me.lanes {
			if q.me.lanes[i].CompareAndSwap(0, w) {
				return i, nil
			}
		}
		if round&63 == 63 {
			if since.IsZero() {
				since = time.Now()
			} else if time.Since(since) > lanesBusyLimit {
				return -1, corruptf("all %d lanes of this handle's member record stay busy", lanesPerMember)
			}
		}
		runtime.Gosched()
	}
}

// lanesBusyLimit bounds how long announce waits for a free lane.
const lanesBusyLimit = time.Second

// releaseLane clears (and so frees) a lane taken by announce; lane < 0 is
// a no-op. The store is a release store on every architecture (it must not
// become visible before the seq stores that finished the claim, which
// precede it in program order), but not an XCHG: the lane itself is in no
// store-then-load handshake, and peers only need to see the
// lane free eventually (a lane that still looks busy only makes a waiter
// wait a little longer before judging the claim). One locked instruction
// less per item on each side.
func (q *futexQueue[T]) releaseLane(lane int) {
	if lane >= 0 {
		atomicx.StoreReleaseUint64(&q.me.lanes[lane], 0)
	}
}

// claimLive reports whether some live process announces a claim of the
// given kind covering position p. A lane is read before its owner word, so
// a record taken over by a new process between the two reads is judged by
// the new (live) owner: again an error only towards waiting.
func (q *futexQueue[T]) claimLive(pop bool, p uint64) bool {
	for i := range q.members {
		m := &q.members[i]
		if m.owner.Load() == 0 {
			continue
		}
		for j := range m.lanes {
			if !laneCovers(m.lanes[j].Load(), pop, p) {
				continue
			}
			o := m.owner.Load()
			if o != 0 && !q.ownerDead(o) {
				return true
			}
		}
	}
	return false
}

// ownerDead reports whether the process an owner word names is certainly
// gone (proc.Dead: definite evidence only; any doubt counts as alive,
// because declaring a live claimant dead would corrupt the queue while the
// opposite only delays a repair). A dead answer is cached forever (a dead
// process stays dead); an alive one for aliveTTL, since claimLive asks
// about every lane of every record.
func (q *futexQueue[T]) ownerDead(o uint64) bool {
	if o == q.self {
		return false
	}
	c := &q.deadCache
	c.mu.Lock()
	if d, ok := c.dead[o]; ok {
		if d || time.Since(c.aliveAt[o]) < aliveTTL {
			c.mu.Unlock()
			return d
		}
	}
	c.mu.Unlock()
	d := proc.Dead(proc.FromWord(o))
	c.mu.Lock()
	if c.dead == nil || len(c.dead) > 4096 {
		c.dead = map[uint64]bool{}
		c.aliveAt = map[uint64]time.Time{}
	}
	c.dead[o] = d
	if !d {
		c.aliveAt[o] = time.Now()
	}
	c.mu.Unlock()
	return d
}

const aliveTTL = 2 * time.Millisecond

// deadCache is the process-local memory of ownerDead.
type deadCache struct {
	mu      stdsync.Mutex
	dead    map[uint64]bool
	aliveAt map[uint64]time.Time
}
