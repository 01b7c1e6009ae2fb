package shmring

import (
	"github.com/shmkit/shmkit/internal/faultguard"
)

// ---- memory faults ----

// ErrTruncated is the message of the error a ring call returns when the
// segment was truncated under it (a peer with write access called
// ftruncate on a posix: or file: segment, and the pages the call touched
// are gone). It wraps ErrCorrupt; the handle is then good only for Close.
// It is the same value as shmqueue.ErrTruncated and shmbus.ErrTruncated.
var ErrTruncated = faultguard.ErrTruncated

// faultErr returns the error of a fault this handle caught, or nil.
func (c *core) faultErr() error { return c.fg.Err() }

// guardP is deferred, with the result of c.fg.Enable(), by the producer's
// guarded calls (batch calls and slow paths always, per-item calls under
// WithFaultGuard): a memory fault inside the segment's mapping becomes
// the handle's fault error (in *errp, if not nil) and leaves the producer
// side faulted; any other panic goes on.
func (c *core) guardP(errp *error, op string, a faultguard.Armed) {
	// Unarmed: a batch call or slow path on a segment that cannot fault
	// (see faultguard.Latch.Guard).
	if a == faultguard.Unarmed {
		return
	}
	if c.fg.Catch(recover(), a, errp, op) {
		c.pstate = roleFaulted
	}
}

// guardC is guardP for consumer methods.
func (c *core) guardC(errp *error, op string, a faultguard.Armed) {
	if a == faultguard.Unarmed {
		return // as in guardP
	}
	if c.fg.Catch(recover(), a, errp, op) {
		c.cstate = roleFaulted
	}
}
