package faultguard

import (
	"fmt"
	"sync/atomic"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
)

// ErrTruncated is what a structure call returns (wrapped, with the
// package, the operation and the spec) when a fault hit the segment's
// mapping: a peer with write access truncated the object, and the pages the
// call touched are gone. It wraps layout.ErrCorrupt. The structure packages
// re-export it (shmring.ErrTruncated, shmqueue.ErrTruncated,
// shmbus.ErrTruncated are this one value).
var ErrTruncated = fmt.Errorf("%w: segment truncated by another process", layout.ErrCorrupt)

// Latch is a handle's memory of the first fault any of its calls caught:
// the one place the structures keep it, and the one place that decides
// whether a call needs the guard at all. A handle makes one Latch (Init)
// and guards a call with
//
//	defer h.latch.Guard(&err, "op", h.latch.Enable())
//
// or, where the fault must also change handle state, with a deferred method
// of its own that calls h.latch.Catch(recover(), a, errp, op) (recover
// works only in the deferred function itself). After the first fault, Err
// returns that error for good: every later call but Close returns it.
//
// On a segment no peer can make fault (segment.Segment.CannotFault: a
// sealed memfd, where the kernel cannot refuse memory) Enable arms nothing
// and returns Unarmed: the guard costs a deferred call instead of 9-15 ns.
// Every other segment is guarded.
type Latch struct {
	pkg, spec   string
	mapping     Region
	cannotFault bool // no peer can make the mapping fault: Enable arms nothing
	eachCall    bool // see GuardsEachCall
	err         atomic.Pointer[error]
}

// Init sets up l for segment seg (its whole mapping) of structure package
// pkg at spec. guardEachCall is the handle's WithFaultGuard setting (false
// for a latch that guards one call, such as an Inspect's).
func (l *Latch) Init(pkg, spec string, seg *segment.Segment, guardEachCall bool) {
	l.init(pkg, spec, seg.Bytes(), seg.CannotFault())
	l.eachCall = guardEachCall && !l.cannotFault
}

func (l *Latch) init(pkg, spec string, b []byte, cannotFault bool) {
	l.pkg, l.spec, l.mapping, l.cannotFault = pkg, spec, RegionOf(b), cannotFault
}

// Armed is what Enable returns, for Guard or Restore: whether Enable armed
// the guard on the calling goroutine, and the setting it found there.
type Armed uint8

const (
	// Unarmed: the mapping cannot fault, nothing was changed.
	Unarmed Armed = iota
	armedFromOff
	armedFromOn
)

// Enable arms the guard on the calling goroutine (panic on fault), unless
// the mapping cannot fault (see Latch). It is small enough to inline.
func (l *Latch) Enable() Armed {
	if l.cannotFault {
		return Unarmed
	}
	return enable()
}

// GuardsEachCall reports whether the handle's per-item calls run under the
// guard: only with WithFaultGuard, and never on a segment that cannot fault.
// Otherwise they skip it altogether, Enable and defer included: the guard
// costs several times a 5-10 ns push or pop. Batch calls and slow paths are
// guarded either way. It reads one field, so it inlines and the per-item
// calls that test it stay small enough to inline.
func (l *Latch) GuardsEachCall() bool { return l.eachCall }

// Region is the mapping l guards.
func (l *Latch) Region() Region { return l.mapping }

// Err returns the error of the first fault caught, or nil.
func (l *Latch) Err() error {
	if p := l.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Faulted reports whether a fault was caught.
func (l *Latch) Faulted() bool { return l.err.Load() != nil }

// Record records fault f, caught in op, and returns the latch's error: the
// first one recorded, whichever call caught it.
func (l *Latch) Record(op string, f *Fault) error {
	err := layout.WrapOp(l.pkg, op, l.spec, fmt.Errorf("%w (%v)", ErrTruncated, f))
	l.err.CompareAndSwap(nil, &err)
	return *l.err.Load()
}

// Catch ends a guarded call, in its deferred function: it puts back the
// panic-on-fault setting Enable found (a), then classifies r, recover()'s
// value there (see the package Catch). For a fault inside the mapping it
// records it, stores the latch's error in *errp (if errp is not nil) and
// reports true; for nil it reports false; anything else panics on. On an
// unarmed latch r is nil unless the caller made faults panics itself, and
// a fault in the mapping is then recorded all the same.
func (l *Latch) Catch(r any, a Armed, errp *error, op string) bool {
	Restore(a)
	if r == nil {
		return false
	}
	f := Catch(r, l.mapping)
	err := l.Record(op, f)
	if errp != nil {
		*errp = err
	}
	return true
}

// Guard is deferred with the result of Enable: a memory fault inside the
// mapping becomes the latch's error (in *errp, if errp is not nil); any
// other panic goes on. It restores the panic-on-fault setting.
//
// Unarmed, it returns before recover() and Catch: they cost as much as the
// armed guard (BenchmarkUnarmed: about 4.5 ns with the early return, 9-11
// without, against 9-10 armed). That serves the calls guarded on every
// handle (batch calls, slow paths, attach): per-item calls on a segment
// that cannot fault skip the guard altogether (GuardsEachCall). shmring's
// guardP and guardC and shmmap's guardRead return early the same way; a
// panic then goes on untouched.
func (l *Latch) Guard(errp *error, op string, a Armed) {
	if a == Unarmed {
		return
	}
	l.Catch(recover(), a, errp, op)
}
