package shmqueue

import (
	"errors"
	"fmt"

	"github.com/shmkit/shmkit/internal/faultguard"
	"github.com/shmkit/shmkit/layout"
)

// Stats is a snapshot of a queue's counters, for monitoring tools. Fields
// are read one by one without a lock, so they need not be mutually
// consistent.
type Stats struct {
	Backend Backend
	Cap     int
	Len     int
	// Pushes and Pops count positions claimed by producers and consumers
	// since creation (including holes left by dead producers).
	Pushes, Pops uint64
	// ProducersWaiting and ConsumersWaiting report that some producer
	// (waiting for room) or consumer (waiting for items, or a WaitSet) in
	// some process may be parked: the notifiers' parked bits. A hint: a
	// waiter killed while parked, or one that armed and then found what
	// it waited for, leaves it set until the next notify.
	ProducersWaiting, ConsumersWaiting bool
	// HolesSkipped counts positions claimed by producers that died before
	// publishing, which consumers skipped (futex backend).
	HolesSkipped uint64
	// SlotsReclaimed counts slots released on behalf of consumers that died
	// between claiming and releasing them (their items are lost; futex).
	SlotsReclaimed uint64
	// Repairs counts SysV lock holders found dead and repaired.
	Repairs uint64
	// Handles is the number of member records held (futex backend),
	// DeadHandles how many of them belong to dead processes (they are
	// taken over by the next Open that finds no free record).
	Handles, DeadHandles int
	Closed               bool
	// SemKey and SemID name a SysV-backend queue's semaphore set as ipcs
	// shows it (key 0: IPC_PRIVATE); SemRemoved reports that the set is
	// gone (removed by ipcrm, say): the queue cannot be used any more
	// (see ErrSemRemoved).
	SemKey     int32
	SemID      int
	SemRemoved bool
}

// Stats returns a snapshot of the queue's counters.
// After a memory fault (a truncated segment) it returns the handle's
// fault error.
func (q *Queue[T]) Stats() (s Stats, err error) {
	if err := q.check("stats"); err != nil {
		return Stats{}, err
	}
	defer q.fg.Guard(&err, "stats", q.fg.Enable())
	s = q.b.stats()
	s.Backend = q.backend
	s.Cap = q.Cap()
	return s, nil
}

// Inspect returns the Stats of the queue segment s (opened with
// layout.Open, possibly read-only) without attaching to it: no member
// record is taken and nothing is written, whatever the element type. For
// monitoring tools such as shmctl. It validates what it reads.
func Inspect(s *layout.Segment) (st Stats, err error) {
	spec := s.Raw().Spec().String()
	var fg faultguard.Latch
	fg.Init("shmqueue", spec, s.Raw(), false)
	defer fg.Guard(&err, "inspect", fg.Enable())
	wrap := func(err error) error { return layout.WrapOp("shmqueue", "inspect", spec, err) }
	h := s.Header()
	if h.Kind != layout.KindQueue {
		return Stats{}, wrap(fmt.Errorf("%w: segment holds a %s, not a queue", ErrTypeMismatch, h.Kind))
	}
	cp, err := checkCapacity(h)
	if err != nil {
		return Stats{}, wrap(err)
	}
	switch b := Backend(h.Params[paramBackend]); b {
	case BackendFutex:
		ctl, members, err := futexRegions(s)
		if err != nil {
			return Stats{}, wrap(err)
		}
		st = futexStats(ctl, members, cp)
	case BackendSysV:
		ctl, err := sysvRegions(s)
		if err != nil {
			return Stats{}, wrap(err)
		}
		st = sysvStats(ctl, cp)
		st.SemKey, st.SemID = int32(uint32(h.Params[paramSemKey])), int(min(h.Params[paramSemID], 1<<31))
		if _, err := openSemSet(h.Params); errors.Is(err, ErrSemRemoved) {
			st.SemRemoved = true
		}
	}
	st.Backend = Backend(h.Params[paramBackend])
	st.Cap = int(cp)
	return st, nil
}
