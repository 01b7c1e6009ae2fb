// Package faultguard turns a memory fault in a shared mapping into an error.
//
// A peer with write access to a POSIX (/dev/shm) or file segment can
// ftruncate it; every process that then touches a page past the new end
// takes SIGBUS, which Go turns into a fatal error. runtime/debug's
// SetPanicOnFault makes such a fault, on the calling goroutine only, a
// recoverable panic whose value is a runtime.Error with an Addr method. This
// package is the one place shmkit structures use it:
//
//	func (r *Ring[T]) Stats() (s RingStats, err error) {
//		defer r.latch.Guard(&err, "stats", r.latch.Enable())
//		...
//	}
//
// A Latch (latch.go) keeps the handle's first fault and arms the guard only
// where a fault can happen. Catch must be given recover()'s value from the
// deferred function itself (recover works only there). A fault at an
// address outside the mapping is not ours to swallow: Catch panics again
// with the same value, and so does any other panic (a bug stays a bug).
//
// # Cost
//
// Enable and Restore each call into the runtime to swap a flag on the
// current goroutine, and the deferred function with its recover() adds a
// call of its own: measured on a 2-core amd64 box, go1.26 (BenchmarkFull
// in this package), about 9-15 ns per guarded call, against ~2 ns for a
// plain call. That is cheap for anything that waits, makes a system call
// or works on a batch, and several times the cost of a 5-10 ns in-process
// ring push or pop (shmring's BenchmarkFaultGuard), which is why the
// rings guard their per-item fast paths only on request.
//
// # What it cannot catch
//
// Only faults on the goroutine that called Enable, while it is enabled.
// A fault inside a system call is not a signal (the kernel returns EFAULT).
// Slices of the mapping handed to the caller (zero-copy reads and writes)
// are touched by the caller's code, outside any guard.
package faultguard

import (
	"fmt"
	"runtime/debug"
)

// enable makes memory faults on the calling goroutine recoverable panics
// and says what the setting was, for Restore. The structures arm the guard
// through their Latch (Latch.Enable), which knows whether it is needed.
func enable() Armed {
	if debug.SetPanicOnFault(true) {
		return armedFromOn
	}
	return armedFromOff
}

// Restore puts back the setting Enable found.
func Restore(a Armed) {
	if a == armedFromOff {
		debug.SetPanicOnFault(false)
	}
}

// Region is an address range [lo, hi): a shared mapping.
type Region struct{ lo, hi uintptr }

// RegionOf returns the address range of b (the whole mapping of a segment).
func RegionOf(b []byte) Region {
	lo := sliceAddr(b)
	return Region{lo: lo, hi: lo + uintptr(len(b))}
}

// Contains reports whether addr lies in r.
func (r Region) Contains(addr uintptr) bool { return addr >= r.lo && addr < r.hi }

func (r Region) String() string { return fmt.Sprintf("%#x-%#x", r.lo, r.hi) }

// Fault describes a memory fault caught inside a mapping.
type Fault struct {
	Addr   uintptr // the faulting address
	Region Region  // the mapping it lies in
	Offset uintptr // Addr - start of the mapping
	Value  error   // the runtime error recovered
}

func (f *Fault) Error() string {
	return fmt.Sprintf("memory fault at %#x, byte %d of the mapping %v", f.Addr, f.Offset, f.Region)
}

// addrError is what the runtime panics with on a fault when panic-on-fault
// is enabled (runtime.errorAddressString).
type addrError interface {
	error
	RuntimeError()
	Addr() uintptr
}

// Catch classifies the value recover() returned in a deferred function:
// nil for nil (no panic), a *Fault for a memory fault inside mapping. Any
// other value, a fault outside the mapping included, is re-panicked.
func Catch(r any, mapping Region) *Fault {
	if r == nil {
		return nil
	}
	if e, ok := r.(addrError); ok && mapping.Contains(e.Addr()) {
		return &Fault{Addr: e.Addr(), Region: mapping, Offset: e.Addr() - mapping.lo, Value: e}
	}
	panic(r)
}
