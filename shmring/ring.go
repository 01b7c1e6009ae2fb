// Package shmring provides single-producer single-consumer rings in shared
// memory: Ring[T] for fixed-size elements and ByteRing for variable-length
// records. They are the fastest path shmkit offers between two processes: no
// locks, no system calls while both sides are busy, and zero-copy batch
// interfaces on both ends.
//
// # Design
//
// A ring segment has two regions after the shmkit header: a control block
// and the slots (or bytes). The control block holds two cursors, tail (items
// ever published) and head (items ever released), each alone on a 128-byte
// line, two notifiers (one per direction) on lines of their own, and the two
// role words. Cursors are free-running 64-bit counters; the capacity is a
// power of two and a slot index is cursor & (capacity-1). The ring is empty
// when head == tail and full when tail-head == capacity.
//
// Each side keeps a private copy of its own cursor (only it writes it) and
// a cache of the other side's cursor, and reloads the other cursor only when
// the cache says "full" (producer) or "empty" (consumer). In steady state a
// push is a slot write plus one atomic store of tail, and one atomic load of
// the notifier word; a pop is a slot read, a store of head and a load. No allocation, no interface call, no syscall. (Go's atomic stores
// are sequentially consistent, an XCHG on amd64: that is the price of the
// lost-wakeup-free handshake below, and the batch calls pay it once per
// batch instead of once per item.)
//
// Blocking calls (Push, Pop, PushBatch, PopBatch, ClaimWait, PeekWait, and
// the ByteRing's Write, ReadInto, ReserveWait, ReadWait) wait the way every
// shmkit structure waits: sync.Notifier's spin, yield, park loop, sized by
// the handle's sync.WaitPolicy (WithWaitPolicy; default SpinThenPark). A
// side about to park sets its notifier's parked bit; the other side loads
// the notifier word after each store of its cursor (one atomic load, on a
// line nobody writes in steady state) and calls FUTEX_WAKE only when the
// bit is set. The wake clears the bit, so it is one wake per park, never
// one per item, and no syscall at all while both sides are busy. A producer
// waiting for room also records the head it needs, so releases short of it
// skip the wake.
// A fast-path operation that can proceed does so without looking at its
// context.
//
// # Roles
//
// There is one producer and one consumer. A handle claims the producer role
// on its first producing call (Push, TryPush, PushBatch, Claim, ...) and the
// consumer role on its first consuming call (Pop, TryPop, PopBatch, Peek,
// ...); Create and Open claim nothing. The role is recorded in the control
// block as one 64-bit word, the holder's pid and start time (so a reused
// PID is not mistaken for the holder), set by CAS. A claim of a role held by
// another live process fails with an error wrapping ErrRoleTaken that names
// the holder; once the holder is certainly dead (the kernel has no such
// process, or it is a zombie, or its PID now names a newer process) the role
// may be taken over. Any doubt (another user's process under hidepid, our
// fd table full) counts as alive: a claim may fail longer, never succeed
// beside a live holder. One process may hold both roles,
// through one handle or two, but two handles in one process cannot hold the
// same role. Close releases the roles of its handle.
//
// # Concurrency
//
// A handle may be used by two goroutines at once: one calling producer
// methods, one calling consumer methods. Producer methods must not be called
// concurrently with each other, nor consumer methods with each other. Len,
// Cap and Stats may be called from any goroutine. Close must not run
// concurrently with any other method; after Close every method returns
// ErrClosed (or false).
//
// # Crash semantics
//
// The cursors live in shared memory, so either side may be SIGKILLed at any
// instruction and restarted (or replaced by another process, once the dead
// holder's role is taken over):
//
//   - Producer: items become visible only when Publish (or Push) stores the
//     new tail, a single atomic store after the items were written. A
//     producer killed between Claim and Publish, or in the middle of writing
//     an item, leaves nothing visible: the claimed slots are simply claimed
//     again (and overwritten) by the next producer. Everything published
//     stays in the ring.
//   - Consumer: head moves only at Advance (or inside Pop, PopBatch). A
//     consumer killed after Peek and before Advance sees the peeked items
//     again when it restarts: at most the n items of its last Peek are
//     delivered twice. Pop and PopBatch advance before returning, so a
//     consumer killed after they return but before it has processed the
//     items loses those items (at most one for Pop, len(buf) for PopBatch).
//     Consumers that need at-least-once delivery use Peek, process, Advance.
//   - Waiters: a side killed while parked leaves its notifier's parked
//     bit set. The other side's next wake clears it: one unneeded
//     FUTEX_WAKE (about 250 ns), then none. Nothing is lost and nothing
//     deadlocks.
//
// A blocked Pop or Push waits for its peer however long it takes, including
// forever if the peer is dead and never replaced: bound it with the context,
// and use Stats to see whether the peer is alive.
//
// # Never trusting the segment
//
// Every load of the other side's cursor is validated: tail-head must lie in
// [0, capacity] (for the byte ring also 8-aligned), otherwise the call
// returns an error wrapping ErrCorrupt. Slot indexes are always masked, so
// no cursor value can index outside the slots. Byte-ring record headers are
// validated (tag, length, bounds, not past the published tail) before a
// record is returned. A peer that scribbles on the segment can make calls
// fail or return wrong data; it cannot make them panic, read out of bounds,
// or spin without bound.
//
// # Truncated segments
//
// A peer with write access to a posix: or file: segment can ftruncate it
// (memfd segments are sealed against that, SysV ones cannot shrink); a
// process touching a lost page then takes SIGBUS. Ring calls catch such a
// fault (runtime/debug.SetPanicOnFault, see internal/faultguard) and
// return an error wrapping ErrCorrupt and ErrTruncated ("segment truncated
// by another process"), naming the call and the spec. From then on the
// handle is good only for Close: every call on the side that faulted, and
// every slow path of the other side, returns that same first error. A
// fault at an address outside the segment's mapping is not caught: it
// panics on, as any bug should.
//
// A memfd segment is normally out of reach of all this (segment's
// CannotFault): it is sealed against shrinking, and a page a peer punches
// out of it (fallocate PUNCH_HOLE) comes back, zeroed, on the next touch.
// There no call is guarded, and WithFaultGuard changes nothing. The guard
// stays as above on an unsealed memfd (accepted with WithUnsealed), one on
// hugetlbfs, and where the kernel may refuse to give a punched-out page back
// (vm.overcommit_memory=2, or 0 before Linux 5.2). SysV segments cannot be
// truncated either, but stay guarded: a peer may have made one huge-page
// backed without a reserve, which faults when the pool runs dry, and that is
// not visible from here.
//
// The guard costs about 10 ns per call (BenchmarkFaultGuard), several
// times the cost of the per-item fast paths, so by default it covers:
//
//   - whole calls: Stats, Len (0 after a fault), Close, Inspect,
//     ReleaseDeadRoles, PushBatch, PopBatch, and the readiness check of
//     WaitSource (a WaitSet);
//   - the slow paths of every other call: claiming a role (the first
//     producing or consuming call) and every wait (Push, Pop, ClaimWait,
//     PeekWait, ReserveWait, ReadWait, Write, ReadInto when they block; a
//     parked call looks again every 100 ms, so a truncation ends it too).
//
// The fast paths of the per-item calls (Push, TryPush, Claim, Publish,
// Pop, TryPop, Peek, Advance; Reserve, Commit, Write, TryWrite, Read,
// ReadWait, Release, ReadInto: their slot or record access, the reload of
// the other side's cursor when the ring looks full or empty, which a side
// that keeps up with its peer does about once per item, the cursor store
// and the notifier load) are not covered unless the handle is made with
// WithFaultGuard, which guards every call. Slices returned by Claim,
// Peek, Reserve and Read are the caller's to touch, outside any guard:
// code that keeps them must protect its own accesses (or use a memfd
// segment). The header read of Open is layout.Open's; shmring validates
// the private copy it returns.
package shmring

import (
	"fmt"
	"reflect"

	"github.com/shmkit/shmkit/internal/options"
	"github.com/shmkit/shmkit/layout"
	shmsync "github.com/shmkit/shmkit/sync"
)

// Ring is a single-producer single-consumer ring of T in shared memory.
// T must be fixed-size and pointer-free (see package layout). See the
// package documentation for roles, concurrency and crash semantics.
type Ring[T any] struct {
	core
	slots []T
}

// Region indexes of a ring segment.
const (
	regionControl = 0
	regionData    = 1
)

// Create makes a ring of capacity slots of T in the segment named by spec
// (e.g. "posix:/jobs"). capacity is rounded up to a power of two (Cap
// reports it; see layout.RoundCapacity), and the slots must fit in 64 TiB. It fails with fs.ErrExist if the object exists.
// The new ring is empty and no role is claimed.
func Create[T any](spec string, capacity int, opts ...Option) (*Ring[T], error) {
	cfg, err := buildConfig("create", spec, opts)
	if err != nil {
		return nil, layout.WrapOp("shmring", "create", spec, err)
	}
	t := reflect.TypeFor[T]()
	ti, err := layout.Describe(t)
	if err != nil {
		return nil, layout.WrapOp("shmring", "create", spec, err)
	}
	if ti.Size == 0 {
		return nil, layout.WrapOp("shmring", "create", spec, fmt.Errorf("%w: %s has size 0", ErrUnsupportedType, t))
	}
	slots, err := layout.RoundCapacity(capacity, 1, maxCapacity)
	if err != nil {
		return nil, layout.WrapOp("shmring", "create", spec, err)
	}
	if slots > maxDataBytes/ti.Size {
		return nil, layout.WrapOp("shmring", "create", spec, fmt.Errorf("%w: %d slots of %d bytes exceed the %s limit", ErrCapacity, slots, ti.Size, layout.FormatBytes(maxDataBytes)))
	}
	capacity = int(slots)
	d := layout.Desc{
		Kind:     layout.KindRing,
		Types:    []reflect.Type{t},
		Capacity: uint64(capacity),
		Params:   [layout.MaxParams]uint64{0: ti.Size},
		Regions: []layout.Region{
			{Size: controlSize, Align: layout.LineSize},
			{Size: uint64(capacity) * ti.Size, Align: max(ti.Align, layout.LineSize)},
		},
	}
	// A fresh object is zero-filled: zero cursors, free roles, no waiters.
	seg, err := layout.Create(spec, d, nil, cfg.Layout...)
	if err != nil {
		return nil, layout.WrapOp("shmring", "create", spec, err)
	}
	r, err := newRing[T](seg, cfg)
	if err != nil {
		_ = seg.Close()
		return nil, layout.WrapOp("shmring", "create", spec, err)
	}
	return r, nil
}

// maxDataBytes bounds the slot region (layout's region limit).
const maxDataBytes = 1 << 46

// Open attaches the ring in the segment named by spec. It fails with
// ErrTypeMismatch if the segment holds another kind or element type, and
// with ErrCorrupt if the ring's geometry does not check out. No role is
// claimed.
func Open[T any](spec string, opts ...Option) (*Ring[T], error) {
	cfg, err := buildConfig("open", spec, opts)
	if err != nil {
		return nil, layout.WrapOp("shmring", "open", spec, err)
	}
	t := reflect.TypeFor[T]()
	if _, err := layout.Describe(t); err != nil {
		return nil, layout.WrapOp("shmring", "open", spec, err)
	}
	seg, err := layout.Open(spec, layout.Expect{Kind: layout.KindRing, Types: []reflect.Type{t}}, cfg.Layout...)
	if err != nil {
		return nil, layout.WrapOp("shmring", "open", spec, err)
	}
	r, err := newRing[T](seg, cfg)
	if err != nil {
		_ = seg.Close()
		return nil, layout.WrapOp("shmring", "open", spec, err)
	}
	return r, nil
}

// newRing validates the ring geometry recorded in seg and builds a handle.
func newRing[T any](seg *layout.Segment, cfg options.Config) (*Ring[T], error) {
	name := seg.Raw().Spec().String()
	h := seg.Header()
	size := uint64(reflect.TypeFor[T]().Size())
	capacity, err := checkCapacity(name, h.Capacity, min(maxCapacity, maxDataBytes/size))
	if err != nil {
		return nil, err
	}
	if seg.NumRegions() != 2 || h.Params[0] != size || uint64(len(seg.Region(regionData))) != capacity*size {
		return nil, layout.WrapOp("shmring", "open", name, fmt.Errorf("%w: %d regions, element size %d, slot region %d bytes for %d slots of %d bytes", ErrCorrupt, seg.NumRegions(), h.Params[0], len(seg.Region(regionData)), capacity, size))
	}
	ctl, err := checkControl(seg)
	if err != nil {
		return nil, err
	}
	slots, err := layout.ViewSlice[T](seg, regionData, int(capacity))
	if err != nil {
		return nil, layout.WrapOp("shmring", "open", name, fmt.Errorf("slots: %w", err))
	}
	r := &Ring[T]{slots: slots}
	r.core.init(seg, ctl, capacity, cfg)
	return r, nil
}

// Cap returns the capacity in slots.
func (r *Ring[T]) Cap() int { return int(r.cap) }

// Len returns the number of published, not yet advanced items at some
// moment during the call. Any goroutine may call it.
func (r *Ring[T]) Len() int {
	return int(r.length())
}

// Stats returns a snapshot of the ring's shared state. It fails with
// ErrClosed after Close, and with ErrCorrupt (the snapshot still filled in)
// when the cursors are inconsistent. Any goroutine may call it.
func (r *Ring[T]) Stats() (RingStats, error) { return r.stats(layout.KindRing) }

// CloseWrites ends the stream, for good: the consumer reads what is in the
// ring and then gets ErrClosed from Pop, PopBatch and PeekWait (TryPop and
// Peek report empty), and any later producer gets ErrClosed. It claims the
// producer role if this handle does not hold it (ErrRoleTaken if a live
// process does), and releases it. Calling it again is a no-op. A producer
// that is SIGKILLed never closes: its consumer keeps waiting for a new
// producer, which resumes from the shared cursor.
func (r *Ring[T]) CloseWrites() error {
	r.claimed = 0
	return r.closeWrites()
}

// WaitSource makes a Ring a sync.Waitable: a WaitSet reports it when an
// item is ready to pop.
func (r *Ring[T]) WaitSource() (*shmsync.Notifier, func() bool) { return r.waitSource() }

// Segment returns the underlying segment (for tools).
func (r *Ring[T]) Segment() *layout.Segment { return r.seg }

// Close releases the roles this handle holds and unmaps the segment; the
// object stays until segment.Remove. Slices returned by Claim and Peek must
// not be used after Close (the memory is unmapped: using it faults). Close
// must not run concurrently with other methods; calling it again is a no-op.
func (r *Ring[T]) Close() error {
	r.claimed, r.peeked = 0, 0
	return r.close()
}
