package shmring

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/shmkit/shmkit/internal/faultguard"
	"github.com/shmkit/shmkit/internal/options"
	"github.com/shmkit/shmkit/layout"
	shmsync "github.com/shmkit/shmkit/sync"
)

// ErrCapacity reports a capacity that is zero, negative, not a power of two,
// or too large.
var ErrCapacity = layout.ErrCapacity

// ErrTooLarge reports a byte-ring record larger than the ring can ever hold
// (see ByteRing.MaxRecord).
var ErrTooLarge = errors.New("shmring: record larger than the ring allows")

// ErrUsage reports a call out of protocol order: Publish/Commit of more than
// was claimed, Advance past what was peeked, and the like.
var ErrUsage = layout.ErrUsage

// core is the part of a ring handle that does not depend on the element
// type: control block, cursors and their caches, roles and waiting.
//
// Producer fields are touched only by the producer goroutine, consumer
// fields only by the consumer goroutine, so one handle can serve as both
// ends from two goroutines; the two groups are padded apart so that doing
// so causes no false sharing in this process either.
type core struct {
	seg    *layout.Segment
	ctl    *control
	cap    uint64
	mask   uint64
	name   string
	policy shmsync.WaitPolicy
	// closed is set by Close; Len and Stats, which any goroutine may call,
	// check it instead of the role states (owned by the role goroutines).
	closed atomic.Bool
	// fg holds the address range of the whole segment (a memory fault
	// inside it is a truncated segment, anything else is a bug: see
	// guardP) and the error of the first memory fault any call of this
	// handle caught; every later call (but Close) returns it.
	fg faultguard.Latch
	_  [layout.LineSize]byte

	// Producer side.
	pstate    uint8
	pheld     bool   // this handle holds the producer role (release it at Close)
	tail      uint64 // private copy of ctl.tail: only we write it
	headCache uint64 // last head we loaded; refreshed when we look full
	claimed   uint64 // Ring: slots of the last Claim, not yet published
	need      uint64 // free space the current wait needs
	perr      error  // corruption seen by roomReady
	roomReady func() bool
	_         [layout.LineSize]byte

	// Consumer side.
	cstate    uint8
	cheld     bool   // this handle holds the consumer role
	head      uint64 // private copy of ctl.head: only we write it
	tailCache uint64 // last tail we loaded; refreshed when we look empty
	peeked    uint64 // Ring: items of the last Peek, not yet advanced
	readEnd   uint64 // ByteRing: end of records read, not yet released
	cerr      error
	dataReady func() bool
	readyPos  uint64 // dataReady reports tail != readyPos
	_         [layout.LineSize]byte
}

func (c *core) init(seg *layout.Segment, ctl *control, capacity uint64, cfg options.Config) {
	c.seg, c.ctl, c.cap, c.mask = seg, ctl, capacity, capacity-1
	c.name = seg.Raw().Spec().String()
	s, _ := cfg.Own.(*settings)
	c.fg.Init("shmring", c.name, seg.Raw(), s != nil && s.faultGuard)
	c.policy = cfg.PolicyOr(defaultPolicy)
	c.roomReady = func() bool {
		ok, err := c.refreshHead(c.need)
		if err != nil {
			c.perr = err
			return true
		}
		return ok
	}
	c.dataReady = func() bool {
		ok, err := c.refreshTail(c.readyPos)
		if err != nil {
			c.cerr = err
			return true
		}
		if ok || c.ctl.writesClosed.Load() == 0 {
			return ok
		}
		// Closed: the producer published everything before it set the
		// flag, so one more look at the tail is final.
		if ok, err = c.refreshTail(c.readyPos); err != nil || ok {
			c.cerr = err
			return true
		}
		c.cerr = c.drained()
		return true
	}
}

// drained is the consumer's error once writes are closed and everything
// was read.
func (c *core) drained() error {
	return layout.WrapOp("shmring", "consume", c.name, fmt.Errorf("%w: the producer closed writes and every item was read", ErrClosed))
}

// corrupt builds the error for cursors that fail validation.
func (c *core) corrupt(head, tail uint64) error {
	return layout.WrapOp("shmring", "check cursors", c.name, fmt.Errorf("%w: head %d, tail %d, capacity %d (tail-head must be in [0, capacity])", ErrCorrupt, head, tail, c.cap))
}

// refreshHead loads the consumer's head and reports whether need units are
// free. The loaded value is validated before it is cached: head may not
// pass our tail nor trail it by more than the capacity.
func (c *core) refreshHead(need uint64) (bool, error) {
	h := c.ctl.head.Load()
	if c.tail-h > c.cap {
		return false, c.corrupt(h, c.tail)
	}
	c.headCache = h
	return c.cap-(c.tail-h) >= need, nil
}

// refreshTail loads the producer's tail and reports whether it has moved
// past pos (our head, or the byte ring's read position).
func (c *core) refreshTail(pos uint64) (bool, error) {
	t := c.ctl.tail.Load()
	// Beyond the capacity, or behind what we have already read: a tail
	// never moves backwards.
	if t-c.head > c.cap || t-c.head < pos-c.head {
		return false, c.corrupt(c.head, t)
	}
	c.tailCache = t
	return t != pos, nil
}

// refreshHeadGuarded is refreshHead for the producer's fast-path calls
// (TryPush, Claim, Reserve). A producer that keeps up with its consumer, or
// a consumer that keeps up with its producer, reloads the other cursor about
// once per item, so the reload is part of the per-item path: it is guarded
// only under WithFaultGuard, like the rest of that path (the same choice
// the bus makes for a subscriber's reload of the tail). Blocking calls guard
// their waits, which re-load the cursor, in every handle.
func (c *core) refreshHeadGuarded(need uint64) (ok bool, err error) {
	if !c.fg.GuardsEachCall() {
		return c.refreshHead(need)
	}
	defer c.guardP(&err, "refresh head", c.fg.Enable())
	return c.refreshHead(need)
}

// refreshTailGuarded is refreshHeadGuarded for the consumer.
func (c *core) refreshTailGuarded(pos uint64) (ok bool, err error) {
	if !c.fg.GuardsEachCall() {
		return c.refreshTail(pos)
	}
	defer c.guardC(&err, "refresh tail", c.fg.Enable())
	return c.refreshTail(pos)
}

// publishTail makes everything up to t visible to the consumer and wakes it
// if it is parked. Must be called only by the producer.
//
// The wake protocol is the Notifier's (Dekker's): we store the tail, then
// load the notifier word; the consumer sets the parked bit, then re-checks
// the tail (all sequentially consistent). Either it sees our tail and does
// not sleep, or we see the bit and wake it.
func (c *core) publishTail(t uint64) {
	c.tail = t
	c.ctl.tail.Store(t)
	c.ctl.notEmpty.Notify() // one load, unless a consumer is parked
}

// releaseHead frees everything before h for the producer and wakes it if
// it is parked waiting for this much room (see publishTail): notFullAt is
// the head it needs, so releases short of it skip the wake. Must be called
// only by the consumer.
func (c *core) releaseHead(h uint64) {
	old := c.head
	c.head = h
	c.ctl.head.Store(h)
	if c.ctl.notFull.Waiting() && c.ctl.notFullAt.Load()-old-1 < h-old {
		c.ctl.notFull.Notify()
	}
}

// closeWrites ends the stream: see Ring.CloseWrites.
func (c *core) closeWrites() error {
	if c.pstate != roleHeld {
		if c.pstate == roleNone && c.ctl.writesClosed.Load() != 0 {
			return nil // already closed, by us or a predecessor
		}
		if err := c.claimProducer(); err != nil {
			return err
		}
	}
	c.ctl.writesClosed.Store(1)
	c.ctl.notEmpty.Notify()
	c.release(roleProducer)
	c.pstate = roleNone
	return nil
}
