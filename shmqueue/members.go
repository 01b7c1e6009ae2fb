package shmqueue

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"runtime"
	"strconv"
	stdsync "sync"
	"time"

	"github.com/shmkit/shmkit/internal/proc"
)

// attach claims a member record for this handle: a free one, else one
// whose owner is dead. The dead owner's lanes are cleared after the claim;
// until then its stale announcements look live, which can only delay a
// repair, never cause a wrong one.
//
// First it frees the records of dead processes, giving back the parked
// counts they still hold (a process killed while parked never decrements
// them, and a non-zero count makes peers call FUTEX_WAKE).
func (q *futexQueue[T]) attach() error {
	me := proc.Self()
	q.self = ownerWord(me.PID, me.Start)
	q.dead = map[uint64]bool{}
	for i := range q.members {
		m := &q.members[i]
		o := m.owner.Load()
		if o == 0 || o == q.self || !q.ownerDead(o) || !m.owner.CompareAndSwap(o, q.self) {
			continue
		}
		q.takeOver(m)
		m.owner.Store(0)
	}
	for i := range q.members {
		m := &q.members[i]
		if m.owner.Load() != 0 || !m.owner.CompareAndSwap(0, q.self) {
			continue
		}
		q.takeOver(m)
		q.me = m
		return nil
	}
	return ErrTooManyHandles
}

// takeOver clears a record this handle now owns: stale claims (the
// claimants are dead, so their positions will be repaired) and parked
// counts (subtracted from the queue-wide counts).
func (q *futexQueue[T]) takeOver(m *member) {
	if v := m.parked[0].Swap(0); v != 0 {
		q.ctl.itemsParked.Add(-v)
	}
	if v := m.parked[1].Swap(0); v != 0 {
		q.ctl.slotsParked.Add(-v)
	}
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
// a no-op. The store is atomic (a release on every architecture): it must
// not become visible before the seq stores that finished the claim.
func (q *futexQueue[T]) releaseLane(lane int) {
	if lane >= 0 {
		q.me.lanes[lane].Store(0)
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
// gone: no such pid, a zombie, or a pid now used by a process with another
// start time. Any doubt (an unreadable /proc) counts as alive, because
// declaring a live claimant dead would corrupt the queue while the
// opposite only delays a repair. A dead answer is cached forever (a dead
// process stays dead); an alive one for aliveTTL.
func (q *futexQueue[T]) ownerDead(o uint64) bool {
	if o == q.self {
		return false
	}
	q.deadMu.Lock()
	if d, ok := q.dead[o]; ok {
		if d || time.Since(q.aliveAt[o]) < aliveTTL {
			q.deadMu.Unlock()
			return d
		}
	}
	q.deadMu.Unlock()
	d := processGone(ownerPID(o), ownerStart(o))
	q.deadMu.Lock()
	if len(q.dead) > 4096 {
		clear(q.dead)
		clear(q.aliveAt)
	}
	q.dead[o] = d
	if q.aliveAt == nil {
		q.aliveAt = map[uint64]time.Time{}
	}
	if !d {
		q.aliveAt[o] = time.Now()
	}
	q.deadMu.Unlock()
	return d
}

const aliveTTL = 2 * time.Millisecond

// processGone reads /proc/PID/stat: the process is gone if the file does
// not exist, if it is a zombie, or if its start time (low 42 bits) differs
// from start (unless start is 0: identity by pid only).
func processGone(pid int32, start uint64) bool {
	if pid <= 0 {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
	if err != nil {
		return errors.Is(err, fs.ErrNotExist) || errors.Is(err, errESRCH)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) > 0 && len(f[0]) > 0 && (f[0][0] == 'Z' || f[0][0] == 'X') {
		return true
	}
	const startField = 22 - 3
	if start == 0 || len(f) <= startField {
		return false
	}
	st, err := strconv.ParseUint(string(f[startField]), 10, 64)
	if err != nil {
		return false
	}
	return st&(1<<ownerStartBits-1) != start
}

// deadState is the process-local part of a futex queue handle used by
// ownerDead.
type deadState struct {
	deadMu  stdsync.Mutex
	dead    map[uint64]bool
	aliveAt map[uint64]time.Time
}
