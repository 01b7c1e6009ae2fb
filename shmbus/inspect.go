package shmbus

import (
	"errors"
	"fmt"

	"github.com/shmkit/shmkit/internal/owner"
	"github.com/shmkit/shmkit/layout"
)

// ---- stats ----

// SubscriberStats describes one subscriber record.
type SubscriberStats struct {
	Index   int
	Name    string // "" for an anonymous subscriber
	Durable bool
	Owner   Holder // PID 0: a durable subscriber with no process attached
	Alive   bool   // Owner.Alive (false when no process is attached)
	Cursor  uint64 // the next message it reads
	Lag     uint64 // published - cursor (clamped)
	Lapped  uint64 // times it was lapped or skipped while dead
	Missed  uint64 // messages it lost that way
}

// Stats is a snapshot of a bus's shared state, for tools and monitoring.
type Stats struct {
	Kind              layout.Kind
	Overflow          Overflow
	Cap               uint64
	MaxSubscribers    int
	Published         uint64 // messages ever published (the tail)
	Closed            bool   // CloseWrites was called
	Publisher         Holder
	PublisherWaiting  bool // the publisher may be parked on "not full"
	SubscriberWaiting bool
	Subscribers       []SubscriberStats
}

// stats reads the shared state. Cursors past the tail are reported with an
// ErrCorrupt (the snapshot is filled in all the same).
// It runs under the fault guard and returns the fault error after a fault.
func (c *core) stats() (s Stats, err error) {
	if err := c.fg.Err(); err != nil {
		return Stats{}, err
	}
	defer c.fg.Guard(&err, "stats", c.fg.Enable())
	s = Stats{Kind: layout.KindBus, Overflow: c.overflow, Cap: c.cap, MaxSubscribers: len(c.recs)}
	s.Published = c.ctl.tail.Load()
	s.Closed = c.ctl.closed.Load() != 0
	s.Publisher = owner.Decode(c.ctl.publisher.Load())
	s.PublisherWaiting = c.ctl.notFull.Waiting()
	s.SubscriberWaiting = c.ctl.notEmpty.Waiting()
	var corrupt error
	for i := range c.recs {
		r := &c.recs[i]
		st := r.state.Load()
		if st == stateFree {
			continue
		}
		ss := SubscriberStats{Index: i, Durable: st == stateDurable}
		if st != stateAnon && st != stateDurable && corrupt == nil {
			corrupt = fmt.Errorf("%w: subscriber %d has state %d", ErrCorrupt, i, st)
		}
		if ss.Durable {
			ss.Name = r.readName()
		}
		ss.Owner = owner.Decode(r.owner.Load())
		ss.Alive = ss.Owner.Alive
		ss.Cursor = r.cursor.Load()
		if ss.Cursor <= s.Published {
			ss.Lag = s.Published - ss.Cursor
		} else if t := c.ctl.tail.Load(); ss.Cursor > t && corrupt == nil {
			corrupt = fmt.Errorf("%w: subscriber %d's cursor %d is past the tail %d", ErrCorrupt, i, ss.Cursor, t)
		}
		ss.Lapped = r.lapped.Load()
		ss.Missed = r.missed.Load()
		s.Subscribers = append(s.Subscribers, ss)
	}
	return s, corrupt
}

// inspectCore builds a core for tools over a validated segment.
func inspectCore(s *layout.Segment) (*core, error) {
	g, err := checkGeometry(s)
	if err != nil {
		return nil, layout.WrapOp("shmbus", "inspect", s.Raw().Spec().String(), err)
	}
	ctl, recs, err := viewControl(s, g)
	if err != nil {
		return nil, layout.WrapOp("shmbus", "inspect", g.name, err)
	}
	c := &core{seg: s, geometry: g, ctl: ctl, recs: recs}
	c.fg.Init("shmbus", g.name, s.Raw(), false)
	return c, nil
}

// Inspect reports the state of a bus segment opened by a tool with
// layout.Open(spec, layout.Expect{Kind: layout.KindAny}), without knowing
// its element type. It claims nothing and writes nothing.
func Inspect(s *layout.Segment) (Stats, error) {
	c, err := inspectCore(s)
	if err != nil {
		return Stats{}, err
	}
	st, err := c.stats()
	return st, layout.WrapOp("shmbus", "inspect", c.name, err)
}

// ReleaseDeadSubscribers frees the records of anonymous subscribers whose
// process has died, and the publisher role if its holder has died, and
// returns what it released. It is for tools (shmctl doctor --fix): a Block
// publisher already skips dead subscribers, and a new subscriber reuses a
// dead one's record when no free one is left. Durable records are left
// alone (their cursor is waiting for their process to come back); see
// RemoveSubscriber.
func ReleaseDeadSubscribers(s *layout.Segment) (released []SubscriberStats, err error) {
	c, err := inspectCore(s)
	if err != nil {
		return nil, err
	}
	defer c.fg.Guard(&err, "release dead subscribers", c.fg.Enable())
	for _, h := range owner.ReleaseDead(&c.ctl.publisher) {
		released = append(released, SubscriberStats{Index: -1, Name: "(publisher)", Owner: h})
	}
	for i := range c.recs {
		r := &c.recs[i]
		if r.state.Load() != stateAnon {
			continue
		}
		w := r.owner.Load()
		if w == 0 {
			continue
		}
		h := owner.Decode(w)
		if h.Alive {
			continue
		}
		ss := SubscriberStats{Index: i, Owner: h, Cursor: r.cursor.Load(), Lapped: r.lapped.Load(), Missed: r.missed.Load()}
		r.state.Store(stateFree)
		if r.owner.CompareAndSwap(w, 0) {
			released = append(released, ss)
		} else {
			r.state.Store(stateAnon) // claimed meanwhile
		}
	}
	c.ctl.notFull.Notify()
	return released, nil
}

// RemoveSubscriber removes the durable subscriber named name from the bus
// segment s, so its cursor no longer holds anything and its record is free.
// It refuses (ErrRoleTaken) while a live process holds it.
func RemoveSubscriber(s *layout.Segment, name string) (err error) {
	c, err := inspectCore(s)
	if err != nil {
		return err
	}
	defer c.fg.Guard(&err, "remove subscriber", c.fg.Enable())
	for i := range c.recs {
		r := &c.recs[i]
		if r.state.Load() != stateDurable || !r.nameIs(name) {
			continue
		}
		w := r.owner.Load()
		if h := owner.Decode(w); h.Alive {
			return layout.WrapOp("shmbus", "remove subscriber", c.name, fmt.Errorf("%w: durable subscriber %q is held by live %s", ErrRoleTaken, name, h))
		}
		if !r.owner.CompareAndSwap(w, 0) {
			return layout.WrapOp("shmbus", "remove subscriber", c.name, fmt.Errorf("%w: durable subscriber %q was just claimed", ErrRoleTaken, name))
		}
		r.nameLen.Store(0)
		r.state.Store(stateFree)
		c.ctl.notFull.Notify()
		return nil
	}
	return layout.WrapOp("shmbus", "remove subscriber", c.name, fmt.Errorf("no durable subscriber %q: %w", name, errNotFound))
}

var errNotFound = errors.New("not found")
