package shmring

import (
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/shmkit/shmkit/internal/faultguard"
	"github.com/shmkit/shmkit/internal/owner"
	"github.com/shmkit/shmkit/layout"
)

// Role states of a handle. roleHeld is the only state the fast paths
// accept; every other value sends them to the slow path, which claims the
// role or reports ErrClosed.
const (
	roleNone uint8 = iota
	roleHeld
	roleClosed
	roleFaulted // a memory fault hit this side: only Close is left
)

// ---- roles ----

const (
	roleProducer = 1
	roleConsumer = 2
)

// RoleHolder describes the holder of a ring role.
type RoleHolder = owner.Holder

func roleName(role uint8) string {
	if role == roleProducer {
		return "producer"
	}
	return "consumer"
}

// roleWord returns the word of a role.
func (c *core) roleWord(role uint8) *atomic.Uint64 {
	if role == roleConsumer {
		return &c.ctl.consumer
	}
	return &c.ctl.producer
}

// claim takes the producer or consumer role for this handle (owner.Claim:
// free, dead holder, or this process with no other handle holding it).
func (c *core) claim(role uint8) error {
	if err := owner.Claim(c.roleWord(role), owner.KeyOf(c.seg, int(role)), "the "+roleName(role)+" role"); err != nil {
		return layout.WrapOp("shmring", "claim role", c.name, err)
	}
	if role == roleProducer {
		c.pheld = true
	} else {
		c.cheld = true
	}
	return nil
}

// release gives up a role this handle holds.
func (c *core) release(role uint8) {
	owner.Release(c.roleWord(role), owner.KeyOf(c.seg, int(role)))
	if role == roleProducer {
		c.pheld = false
	} else {
		c.cheld = false
	}
}

// claimProducer is the producer's slow path: claim the role and load the
// cursors the previous producer (if any) left.
func (c *core) claimProducer() (err error) {
	switch c.pstate {
	case roleHeld:
		return nil
	case roleClosed:
		return layout.WrapOp("shmring", "produce", c.name, ErrClosed)
	}
	if err := c.faultErr(); err != nil {
		return err
	}
	defer c.guardP(&err, "claim role", c.fg.Enable())
	if c.ctl.writesClosed.Load() != 0 {
		return layout.WrapOp("shmring", "produce", c.name, fmt.Errorf("%w: writes were closed (CloseWrites)", ErrClosed))
	}
	if err := c.claim(roleProducer); err != nil {
		return err
	}
	t, h := c.ctl.tail.Load(), c.ctl.head.Load()
	if t-h > c.cap {
		c.release(roleProducer)
		return c.corrupt(h, t)
	}
	c.tail, c.headCache = t, h
	c.pstate = roleHeld
	return nil
}

// claimConsumer is the consumer's slow path: claim the role and resume
// from the shared head, which is where the previous consumer last advanced.
func (c *core) claimConsumer() (err error) {
	switch c.cstate {
	case roleHeld:
		return nil
	case roleClosed:
		return layout.WrapOp("shmring", "consume", c.name, ErrClosed)
	}
	if err := c.faultErr(); err != nil {
		return err
	}
	defer c.guardC(&err, "claim role", c.fg.Enable())
	if err := c.claim(roleConsumer); err != nil {
		return err
	}
	h, t := c.ctl.head.Load(), c.ctl.tail.Load()
	if t-h > c.cap {
		c.release(roleConsumer)
		return c.corrupt(h, t)
	}
	c.head, c.tailCache = h, t
	c.cstate = roleHeld
	return nil
}

func (c *core) close() error {
	if c.pstate == roleClosed && c.cstate == roleClosed {
		return nil
	}
	c.releaseRoles()
	c.pstate, c.cstate = roleClosed, roleClosed
	c.closed.Store(true)
	c.roomReady, c.dataReady = nil, nil
	err := c.seg.Close()
	runtime.KeepAlive(c.seg)
	return err
}

// releaseRoles gives up the roles this handle holds. After a fault the
// role words may be gone with the truncated pages: a role whose word
// faults is forgotten locally all the same, and left to the next claimer
// (who finds this process alive and waits, or dead and takes over).
func (c *core) releaseRoles() {
	if c.pheld {
		c.releaseGuarded(roleProducer)
	}
	if c.cheld {
		c.releaseGuarded(roleConsumer)
	}
}

func (c *core) releaseGuarded(role uint8) {
	defer c.fg.Guard(nil, "close", c.fg.Enable())
	c.release(role)
}

// ReleaseDeadRoles frees every role of the ring segment s whose holder has
// died, as the next producer or consumer would when claiming it, and
// returns the holders it released. It is for tools (shmctl doctor --fix):
// programs never need it, because claiming a role held by a dead process
// succeeds anyway. A role held by a live process is left alone; the cursors
// are untouched, so a new holder resumes where the dead one stopped.
func ReleaseDeadRoles(s *layout.Segment) (released []RoleHolder, err error) {
	if k := s.Header().Kind; k != layout.KindRing && k != layout.KindByteRing {
		return nil, layout.WrapOp("shmring", "release dead roles", s.Raw().Spec().String(), fmt.Errorf("%w: segment holds a %s, not a ring", ErrTypeMismatch, k))
	}
	ctl, err := checkControl(s)
	if err != nil {
		return nil, err
	}
	var fg faultguard.Latch
	fg.Init("shmring", s.Raw().Spec().String(), s.Raw(), false)
	defer fg.Guard(&err, "release dead roles", fg.Enable())
	return owner.ReleaseDead(&ctl.producer, &ctl.consumer), nil
}
