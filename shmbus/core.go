package shmbus

import (
	"context"
	"fmt"
	stdsync "sync"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/faultguard"
	"github.com/shmkit/shmkit/internal/options"
	"github.com/shmkit/shmkit/internal/owner"
	"github.com/shmkit/shmkit/internal/proc"
	"github.com/shmkit/shmkit/layout"
	shmsync "github.com/shmkit/shmkit/sync"
)

// ErrUsage reports a call out of protocol order: Release of more than was
// peeked, Peek on an overwriting bus, and the like.
var ErrUsage = layout.ErrUsage

// Holder describes the process named by an owner word.
type Holder = owner.Holder

// core is the part of a bus handle that does not depend on T.
type core struct {
	seg  *layout.Segment
	ctl  *control
	recs []record
	geometry
	policy shmsync.WaitPolicy
	closed atomic.Bool
	subsMu stdsync.Mutex
	subs   map[closer]struct{}
	// fg holds the segment's address range and the error of the first
	// memory fault any call of this handle or its subscribers caught:
	// every later call but Close returns it.
	fg faultguard.Latch
	_  [layout.LineSize]byte

	// Publisher side (one goroutine).
	pstate    uint8
	tail      uint64 // private copy of ctl.tail
	limit     uint64 // Block: publish while tail < limit (min live cursor + cap)
	gen       uint64 // ctl.gen when limit was computed
	dead      []uint64
	perr      error
	roomReady func() bool
	pollDead  func() bool
	_         [layout.LineSize]byte
}

type closer interface{ closeLocked() error }

const (
	roleNone uint8 = iota
	roleHeld
	roleClosed
)

// pollEvery is how often a blocked Block publisher asks whether the
// subscribers holding it back are still alive.
const pollEvery = 2 * time.Millisecond

func (c *core) init(seg *layout.Segment, g geometry, ctl *control, recs []record, cfg options.Config) {
	c.seg, c.geometry, c.ctl, c.recs = seg, g, ctl, recs
	c.policy = cfg.PolicyOr(shmsync.SpinThenPark)
	s, _ := cfg.Own.(*settings)
	c.fg.Init("shmbus", c.name, seg.Raw(), s != nil && s.faultGuard)
	c.dead = make([]uint64, len(recs))
	c.subs = map[closer]struct{}{}
	c.roomReady = func() bool {
		ok, err := c.rescan()
		if err != nil {
			c.perr = err
			return true
		}
		return ok
	}
	c.pollDead = c.markDead
}

func (c *core) errf(op string, err error) error { return layout.WrapOp("shmbus", op, c.name, err) }

// rescan recomputes the Block publisher's limit from the subscriber table:
// the smallest cursor of the records whose owner is not known to be dead
// (and never more than the tail), plus the capacity. It reports whether
// the next message fits.
func (c *core) rescan() (bool, error) {
	c.gen = c.ctl.gen.Load()
	t := c.tail
	low := t
	for i := range c.recs {
		r := &c.recs[i]
		if r.state.Load() == stateFree {
			continue
		}
		o := r.owner.Load()
		if o == 0 || o == c.dead[i] {
			continue
		}
		cur := r.cursor.Load()
		if cur > t {
			return false, fmt.Errorf("%w: subscriber %d's cursor %d is past the tail %d", ErrCorrupt, i, cur, t)
		}
		low = min(low, cur)
	}
	c.limit = low + c.cap
	return t < c.limit, nil
}

// rescanGuarded is rescan for TryPublish, whose fast path is not guarded:
// the rescan is its slow path, and is.
func (c *core) rescanGuarded() (ok bool, err error) {
	defer c.fg.Guard(&err, "publish", c.fg.Enable())
	return c.rescan()
}

// markDead looks at the owners of the records that hold the publisher
// back and remembers those that are certainly dead, so rescan skips them.
// It reports whether it found any.
func (c *core) markDead() bool {
	found := false
	t := c.tail
	for i := range c.recs {
		r := &c.recs[i]
		if r.state.Load() == stateFree {
			continue
		}
		o := r.owner.Load()
		if o == 0 || o == c.dead[i] {
			continue
		}
		if cur := r.cursor.Load(); t-cur < c.cap {
			continue
		}
		if proc.Dead(proc.FromWord(o)) {
			c.dead[i] = o
			found = true
		}
	}
	return found
}

// waitRoom blocks a Block publisher until the next message fits.
// It runs under the fault guard, the whole wait.
func (c *core) waitRoom(ctx context.Context) (err error) {
	defer c.fg.Guard(&err, "publish", c.fg.Enable())
	if ok, err := c.rescan(); err != nil || ok {
		return err
	}
	c.perr = nil
	if target := c.tail - c.cap + 1; c.ctl.notFullAt.Load() != target {
		c.ctl.notFullAt.Store(target)
	}
	err = c.ctl.notFull.WaitPoll(ctx, c.policy, c.roomReady, pollEvery, c.pollDead)
	if c.perr != nil {
		err, c.perr = c.perr, nil
	}
	return err
}

// claimPublisher takes the publisher role: free, held by a dead process, or
// left by a dropped handle of this process.
// It runs under the fault guard, and returns the handle's fault error
// after a fault.
func (c *core) claimPublisher() (err error) {
	if err := c.fg.Err(); err != nil {
		return err
	}
	switch c.pstate {
	case roleHeld:
		return nil
	case roleClosed:
		return ErrClosed
	}
	if c.closed.Load() {
		return ErrClosed
	}
	defer c.fg.Guard(&err, "claim publisher", c.fg.Enable())
	if err := c.claimWord(&c.ctl.publisher, publisherSlot, "the publisher role"); err != nil {
		return err
	}
	if c.ctl.closed.Load() != 0 {
		c.releaseWord(&c.ctl.publisher, publisherSlot)
		return fmt.Errorf("%w: closed for writes", ErrClosed)
	}
	c.tail = c.ctl.tail.Load()
	c.limit, c.gen = 0, c.ctl.gen.Load()-1 // force a rescan
	c.pstate = roleHeld
	return nil
}

// Slots of owner.Keys: the publisher role, else a record index.
const publisherSlot = -1

// claimWord claims an owner word of this bus for this handle (owner.Claim).
func (c *core) claimWord(word *atomic.Uint64, slot int, what string) error {
	return owner.Claim(word, owner.KeyOf(c.seg, slot), what)
}

func (c *core) releaseWord(word *atomic.Uint64, slot int) {
	owner.Release(word, owner.KeyOf(c.seg, slot))
}

// lockTable takes the subscriber-table lock. A holder that died is
// replaced; a live holder that keeps it past ctx fails the call.
func (c *core) lockTable(ctx context.Context) error {
	me := proc.Self().Word()
	ready := func() bool { return c.ctl.lock.CompareAndSwap(0, me) }
	poll := func() bool {
		w := c.ctl.lock.Load()
		if w != 0 && w != me && proc.Dead(proc.FromWord(w)) {
			return c.ctl.lock.CompareAndSwap(w, 0)
		}
		return false
	}
	if err := c.ctl.tableFree.WaitPoll(ctx, c.policy, ready, pollEvery, poll); err != nil {
		return fmt.Errorf("%w: the subscriber table stays locked by %s: %w", ErrRoleTaken, owner.Decode(c.ctl.lock.Load()), err)
	}
	return nil
}

func (c *core) unlockTable() {
	c.ctl.lock.CompareAndSwap(proc.Self().Word(), 0)
	c.ctl.tableFree.Notify()
}
