package shmring

import (
	"context"
	"time"

	shmsync "github.com/shmkit/shmkit/sync"
)

// parkRecheck bounds every park of a blocked call: it looks at the ring
// again at least this often even if no wake comes. Wakes are never lost by
// the protocol; this is what makes a peer that truncated the segment (the
// look then faults, and the fault guard reports it) or scribbled the
// notifier word a delay instead of a hang.
const parkRecheck = 100 * time.Millisecond

// waitRoom blocks until need units are free, ctx is done, or the cursors
// are found corrupt. The producer role must be held.
func (c *core) waitRoom(ctx context.Context, need uint64) (err error) {
	defer c.guardP(&err, "wait for room", c.fg.Enable())
	c.need, c.perr = need, nil
	// Stored before the notifier sets its parked bit, so a consumer that
	// sees the bit sees the target too.
	if target := c.tail + need - c.cap; c.ctl.notFullAt.Load() != target {
		c.ctl.notFullAt.Store(target)
	}
	err = c.ctl.notFull.WaitPoll(ctx, c.policy, c.roomReady, parkRecheck, shmsync.LookAgain)
	if c.perr != nil {
		err, c.perr = c.perr, nil
	}
	return err
}

// waitData blocks until the tail moves past pos, ctx is done, or the
// cursors are found corrupt. The consumer role must be held.
func (c *core) waitData(ctx context.Context, pos uint64) (err error) {
	defer c.guardC(&err, "wait for data", c.fg.Enable())
	c.readyPos, c.cerr = pos, nil
	err = c.ctl.notEmpty.WaitPoll(ctx, c.policy, c.dataReady, parkRecheck, shmsync.LookAgain)
	if c.cerr != nil {
		err, c.cerr = c.cerr, nil
	}
	return err
}

// waitSource is the consumer side's sync.Waitable: the notifier the
// producer signals, and "the tail is past the head" (or the handle is
// closed). It claims no role.
func (c *core) waitSource() (*shmsync.Notifier, func() bool) {
	return &c.ctl.notEmpty, func() (ready bool) {
		if c.closed.Load() || c.fg.Faulted() {
			return true
		}
		// A fault here is recorded (the next consuming call reports it)
		// and makes the source ready, so the WaitSet returns.
		ready = true
		defer c.fg.Guard(nil, "wait", c.fg.Enable())
		return c.ctl.tail.Load() != c.ctl.head.Load() || c.ctl.writesClosed.Load() != 0
	}
}
