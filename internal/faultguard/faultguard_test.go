package faultguard

import (
	"errors"
	"strings"

	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"

	"golang.org/x/sys/unix"
)

// mapTruncated maps a 2-page file and truncates it to 0: touching the
// mapping then faults (SIGBUS).
func mapTruncated(t *testing.T) []byte {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "m"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := 2 * os.Getpagesize()
	if err := f.Truncate(int64(size)); err != nil {
		t.Fatal(err)
	}
	b, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Munmap(b) })
	b[0] = 1
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	return b
}

func touch(b []byte, i int, region Region) (f *Fault) {
	a := enable()
	defer func() {
		f = Catch(recover(), region)
		Restore(a)
	}()
	b[i] = 2
	return nil
}

func TestCatchFaultInMapping(t *testing.T) {
	b := mapTruncated(t)
	f := touch(b, 4097, RegionOf(b))
	if f == nil {
		t.Fatal("no fault caught")
	}
	if f.Offset != 4097 {
		t.Errorf("offset %d, want 4097", f.Offset)
	}
	if debug.SetPanicOnFault(false) {
		t.Error("panic-on-fault left enabled")
	}
	t.Log(f)
}

func TestRepanicOutsideMapping(t *testing.T) {
	b := mapTruncated(t)
	other := make([]byte, 64)
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("a fault outside the region was swallowed")
		}
		if _, ok := r.(addrError); !ok {
			t.Fatalf("re-panicked with %T %v", r, r)
		}
	}()
	touch(b, 1, RegionOf(other))
}

func TestRepanicOther(t *testing.T) {
	b := make([]byte, 8)
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("an index panic was swallowed")
		}
	}()
	i := 9
	touch(b, i, RegionOf(b))
}

func TestNoPanic(t *testing.T) {
	b := make([]byte, 8)
	if f := touch(b, 1, RegionOf(b)); f != nil {
		t.Fatal(f)
	}
}

func latchTouch(l *Latch, b []byte, i int) (err error) {
	defer l.Guard(&err, "touch", l.Enable())
	b[i] = 3
	return nil
}

func TestLatch(t *testing.T) {
	b := mapTruncated(t)
	var l Latch
	l.init("pkg", "posix:/x", b, false)
	if l.Err() != nil || l.Faulted() {
		t.Fatal("fresh latch reports a fault")
	}
	err := latchTouch(&l, b, 10)
	if !errors.Is(err, ErrTruncated) || !errors.Is(err, layout.ErrCorrupt) {
		t.Fatalf("got %v", err)
	}
	if !strings.HasPrefix(err.Error(), "pkg: touch posix:/x") || !strings.Contains(err.Error(), "segment truncated by another process") {
		t.Fatalf("message %q", err)
	}
	// A second fault keeps the first error.
	if err2 := latchTouch(&l, b, 4097); err2 != err || l.Err() != err {
		t.Fatalf("second fault: %v, latch %v, want %v", err2, l.Err(), err)
	}
	if debug.SetPanicOnFault(false) {
		t.Error("panic-on-fault left enabled")
	}
}

// latchArmed reports whether l.Enable armed panic-on-fault on this
// goroutine, as seen from inside a guarded call.
func latchArmed(l *Latch) (armed bool) {
	defer l.Guard(nil, "look", l.Enable())
	armed = debug.SetPanicOnFault(true) // the setting Enable left
	if !armed {
		debug.SetPanicOnFault(false)
	}
	return armed
}

// TestLatchUnarmed: a latch for a segment that cannot shrink arms nothing
// (the guarded call runs with panic-on-fault off and leaves it off), one
// for a shrinkable segment arms it, and the zero Latch is guarded. Per-item
// calls are guarded (GuardsEachCall) only where asked for and the segment
// can shrink.
func TestLatchUnarmed(t *testing.T) {
	sealed, err := segment.Create("memfd:"+testproc.UniqueName("latch"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sealed.Close() })
	posix, err := segment.Create("posix:/"+testproc.UniqueName("latch"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { posix.Close(); _ = segment.Remove(posix.Spec().String()) })

	var fixed, shrinkable, zero Latch
	fixed.Init("pkg", "memfd:x", sealed, true)
	shrinkable.Init("pkg", "posix:/x", posix, true)
	if fixed.GuardsEachCall() {
		t.Error("a sealed memfd's latch guards each call")
	}
	if !shrinkable.GuardsEachCall() {
		t.Error("a posix segment's latch asked to guard each call does not")
	}
	if zero.GuardsEachCall() {
		t.Error("the zero Latch guards each call")
	}
	var unasked Latch
	unasked.Init("pkg", "posix:/x", posix, false)
	if unasked.GuardsEachCall() {
		t.Error("a latch not asked to guard each call does")
	}
	if !latchArmed(&unasked) {
		t.Error("panic-on-fault off inside a call guarded by a posix segment's latch not asked to guard each call")
	}
	if fixed.Enable() != Unarmed {
		t.Error("a sealed memfd's latch armed the guard")
	}
	if latchArmed(&fixed) {
		t.Error("panic-on-fault on inside a call guarded by a sealed memfd's latch")
	}
	if !latchArmed(&shrinkable) {
		t.Error("panic-on-fault off inside a call guarded by a posix segment's latch")
	}
	if !latchArmed(&zero) {
		t.Error("the zero Latch must guard")
	}
	if debug.SetPanicOnFault(false) {
		t.Error("panic-on-fault left enabled")
	}
}

// TestLatchRestoresOnOtherPanic: a panic that is not a fault in the
// mapping goes on through Guard, and the goroutine's panic-on-fault setting
// is put back before it does.
func TestLatchRestoresOnOtherPanic(t *testing.T) {
	var l Latch // zero: guarded
	b := make([]byte, 8)
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Fatal("an index panic was swallowed")
			}
		}()
		i := 9
		func() {
			defer l.Guard(nil, "index", l.Enable())
			b[i] = 1
		}()
	}()
	if debug.SetPanicOnFault(false) {
		t.Error("panic-on-fault left enabled by a panic through Guard")
	}
	if l.Faulted() {
		t.Error("a panic that is not a fault was recorded")
	}
}
