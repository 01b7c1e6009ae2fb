package shmbus

import (
	"context"
	"fmt"
	"time"

	"github.com/shmkit/shmkit/internal/owner"
	"github.com/shmkit/shmkit/internal/proc"
)

// ---- joining ----

type subConfig struct {
	oldest bool
	name   string
}

// SubscribeOption configures Subscribe.
type SubscribeOption struct {
	apply func(*subConfig)
}

// FromOldest makes a new subscriber start at the oldest message still in
// the ring (at most capacity-1 back: the one the publisher may be
// overwriting right now is not counted as retained). The default is the
// next message published. A durable subscriber resuming its cursor ignores
// it.
func FromOldest() SubscribeOption {
	return SubscribeOption{func(c *subConfig) { c.oldest = true }}
}

// Durable names the subscriber: its record (cursor, counters) outlives the
// process, and a later Subscribe with the same name resumes after the last
// message its predecessor consumed. At most one live process holds a name.
func Durable(name string) SubscribeOption {
	return SubscribeOption{func(c *subConfig) { c.name = name }}
}

// joined is what join returns.
type joined struct {
	idx     int
	cursor  uint64
	missed  uint64 // lapped while away (Block: skipped while dead)
	durable bool
}

// join claims a subscriber record and sets its cursor (see the package doc
// for the protocol that keeps a Block publisher from lapping a joiner).
// It runs under the fault guard.
func (c *core) join(sc subConfig) (j joined, err error) {
	defer c.fg.Guard(&err, "subscribe", c.fg.Enable())
	if sc.name != "" && (len(sc.name) > MaxNameLen) {
		return j, fmt.Errorf("%w: durable name of %d bytes (at most %d)", ErrCapacity, len(sc.name), MaxNameLen)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.lockTable(ctx); err != nil {
		return j, err
	}
	defer c.unlockTable()
	me := proc.Self().Word()

	idx, resume := -1, false
	if sc.name != "" {
		j.durable = true
		for i := range c.recs {
			r := &c.recs[i]
			if r.state.Load() == stateDurable && r.nameIs(sc.name) {
				if err := c.claimWord(&r.owner, i, fmt.Sprintf("durable subscriber %q", sc.name)); err != nil {
					return j, err
				}
				idx, resume = i, true
				break
			}
		}
	}
	if idx < 0 {
		idx = c.claimFree(me)
		if idx < 0 {
			return j, fmt.Errorf("%w: all %d subscriber records are in use", ErrCapacity, len(c.recs))
		}
		owner.Note(owner.KeyOf(c.seg, idx))
	}
	r := &c.recs[idx]
	j.idx = idx
	t0 := c.ctl.tail.Load()
	var cur uint64
	if resume {
		cur = r.cursor.Load()
		if cur > t0 {
			c.releaseWord(&r.owner, idx)
			return j, fmt.Errorf("%w: durable subscriber %q's cursor %d is past the tail %d", ErrCorrupt, sc.name, cur, t0)
		}
	} else {
		cur = t0
		if sc.oldest {
			cur = t0 - min(t0, c.cap-1)
		}
		r.lapped.Store(0)
		r.missed.Store(0)
		r.cursor.Store(cur)
		if j.durable {
			copy(r.name[:], sc.name)
			r.nameLen.Store(uint32(len(sc.name)))
			r.state.Store(stateDurable)
		} else {
			r.nameLen.Store(0)
			r.state.Store(stateAnon)
		}
	}
	// The cursor is in place: make a Block publisher re-read the table
	// before its next message, then see how far it may already be.
	c.ctl.gen.Add(1)
	t1 := c.ctl.tail.Load()
	if t1 < cur {
		c.releaseWord(&r.owner, idx)
		return j, fmt.Errorf("%w: tail %d moved behind cursor %d", ErrCorrupt, t1, cur)
	}
	switch {
	case !resume && !sc.oldest:
		cur = t1 // from the next message: everything before t1 was published before we joined
	case t1-cur >= c.cap && c.overflow == Block:
		// Skipped while away (or, joining from the oldest, the publisher
		// moved on): start at the oldest message it cannot be overwriting.
		next := t1 - c.cap + 1
		if resume {
			j.missed = next - cur
			r.lapped.Add(1)
			r.missed.Add(next - cur)
		}
		cur = next
	case sc.oldest && !resume && t1-cur >= c.cap:
		cur = t1 - c.cap + 1
	}
	r.cursor.Store(cur)
	j.cursor = cur
	return j, nil
}

// claimFree claims a free record, or else one of a dead anonymous
// subscriber, for this process and returns its index (-1: none).
func (c *core) claimFree(me uint64) int {
	for i := range c.recs {
		r := &c.recs[i]
		if r.state.Load() == stateFree && r.owner.CompareAndSwap(0, me) {
			if r.state.Load() == stateFree {
				return i
			}
			r.owner.CompareAndSwap(me, 0)
		}
	}
	for i := range c.recs {
		r := &c.recs[i]
		st := r.state.Load()
		if st == stateDurable {
			continue
		}
		o := r.owner.Load()
		if o != 0 && o != me && proc.Dead(proc.FromWord(o)) && r.owner.CompareAndSwap(o, me) {
			r.state.Store(stateFree)
			return i
		}
	}
	return -1
}

// leave releases a subscriber record: an anonymous one is freed, a durable
// one keeps its name and cursor with no owner. The publisher is woken: it
// may have been waiting for this subscriber.
// It runs under the fault guard: a record lost with truncated pages is
// simply forgotten.
func (c *core) leave(idx int, durable bool) {
	defer c.fg.Guard(nil, "close", c.fg.Enable())
	r := &c.recs[idx]
	me := proc.Self().Word()
	if r.owner.Load() == me && !durable {
		r.state.Store(stateFree)
	}
	c.releaseWord(&r.owner, idx)
	c.ctl.notFull.Notify()
}

// Subscribe adds a subscriber: anonymous from the next message (default),
// FromOldest, or Durable(name). It fails with ErrCapacity when every record
// is taken by a live (or durable) subscriber, and with ErrRoleTaken when a
// live process holds the durable name.
func (b *Bus[T]) Subscribe(opts ...SubscribeOption) (*Subscriber[T], error) {
	if b.closed.Load() {
		return nil, b.errf("subscribe", ErrClosed)
	}
	if err := b.fg.Err(); err != nil {
		return nil, err
	}
	var sc subConfig
	for _, o := range opts {
		if o.apply != nil {
			o.apply(&sc)
		}
	}
	j, err := b.join(sc)
	if err != nil {
		return nil, b.errf("subscribe", err)
	}
	s := &Subscriber[T]{b: b, rec: &b.recs[j.idx], idx: j.idx, durable: j.durable, state: roleHeld,
		cursor: j.cursor, tailCache: j.cursor, pending: j.missed}
	s.dataReady = func() bool {
		ok, err := s.refresh()
		if err != nil {
			s.cerr = err
			return true
		}
		return ok || s.sawClosed
	}
	b.subsMu.Lock()
	b.subs[s] = struct{}{}
	b.subsMu.Unlock()
	b.notifyRoom()
	return s, nil
}

// notifyRoom wakes a Block publisher (under the fault guard: a fault is
// recorded, for the next call to report).
func (c *core) notifyRoom() {
	defer c.fg.Guard(nil, "subscribe", c.fg.Enable())
	c.ctl.notFull.Notify()
}
