// Package shmbus is publish/subscribe in shared memory: Bus[T] has one
// publisher and up to a fixed number of subscribers, in any processes, each
// of which sees every message published after it joined, in order.
//
// # Design
//
// A bus segment has three regions after the shmkit header: a control block
// (the publisher's tail, notifiers, a join generation, the CloseWrites
// flag, the publisher role word and the subscriber-table lock, each hot
// word alone on a 128-byte line), a table of subscriber records (cursor on
// a line of its own; owner, state, name, lapped and missed counters on the
// next), and capacity slots. Cursors are free-running 64-bit message
// counts; slot i holds message m when m&(capacity-1) == i. The capacity,
// the table size and the overflow policy are in the header, fixed at
// Create.
//
// Publishing is the ring's: write the slot, store the tail (one atomic
// store), then one load of the "not empty" notifier, which makes a
// FUTEX_WAKE only when a subscriber is parked. Each subscriber reads the
// slot at its cursor and stores its cursor: subscribers never write the
// same line.
//
// # Overflow
//
// Block (default): the publisher keeps a private limit, the smallest
// cursor of the live subscribers plus the capacity, and re-reads the table
// only when the tail reaches it or when the join generation changed (one
// load of a line that is written only when a subscriber joins): no
// per-publish scan. While it is blocked it parks on "not full"; the advance
// of the slowest subscriber past the position it needs wakes it, and every
// 2 ms it checks the owners of the subscribers holding it back with
// proc.Dead: a dead one (SIGKILLed, say) is skipped from then on, so a
// dead subscriber holds the publisher for at most a few milliseconds.
// Subscriber.Close releases at once. Subscribers read slots in place
// (Peek/Release are zero-copy), because the publisher never overwrites a
// message a live subscriber has not read.
//
// Overwrite: Publish never waits. Each slot has a sequence word (message
// number + 1, or 0 while the publisher writes it); a subscriber loads it,
// copies the slot, and loads it again. If either load is not its message,
// the slot was overwritten: the subscriber was lapped. Next then returns an
// error wrapping ErrLagged (a *LaggedError with Missed), moves the cursor to
// the oldest message the publisher cannot be writing (tail-capacity+1), and
// continues from there. A torn message is never returned, and what a
// subscriber received plus what it was told it missed is exactly what was
// published since it joined. There is no zero-copy read in this mode.
//
// # Joining
//
// Subscribe claims a record under a short table lock (a proc word; a dead
// holder's lock is taken over): a free record, else one of a dead anonymous
// subscriber. It stores the cursor (the tail, or FromOldest: the oldest
// retained message), bumps the join generation, and loads the tail again:
// a Block publisher that did not yet see the new generation can have
// written at most the message at that tail, so a cursor above
// tail-capacity is safe; a lower one is moved up.
//
// # Durable subscribers
//
// Durable(name) records the name: the record and its cursor outlive the
// process. A later Subscribe with the same name (by the same or another
// process, once the holder is dead or closed) resumes at the cursor. Next
// advances the cursor before it returns the message, so a durable
// subscriber SIGKILLed at any point loses at most the one message it had
// received but not processed, and is never given a message twice. While
// its process is dead (or it is closed) a Block publisher skips it; when it
// returns and the publisher has overwritten messages it had not read, its
// first Next reports them with ErrLagged. A durable record stays until
// RemoveSubscriber (shmctl).
//
// # Roles and concurrency
//
// The first Publish, TryPublish or CloseWrites claims the publisher role
// like a ring's producer role: a second live publisher gets ErrRoleTaken
// naming the holder; a dead holder's role is taken over. A Bus handle's
// publishing methods must not be called concurrently with each other; each
// Subscriber is used by one goroutine at a time; different subscribers and
// the publisher may run concurrently. Bus.Close closes the handle's
// subscribers too and must not run concurrently with anything else.
//
// # Never trusting the segment
//
// Cursors and the tail are validated on every load that matters (a cursor
// past the tail, or further behind than the capacity where that is
// impossible, is ErrCorrupt); slot indexes are masked; record indexes come
// from the header's table size, checked against the region; names are
// bounded. A peer that scribbles on the segment can make calls fail or
// return wrong data, never panic, read out of bounds or hang.
//
// # Truncated segments
//
// A peer with write access to a posix: or file: segment can ftruncate it;
// a process touching a lost page then takes SIGBUS. Bus and subscriber
// calls catch such a fault (see internal/faultguard) and return an error
// wrapping ErrCorrupt and ErrTruncated ("segment truncated by another
// process") naming the call and the spec; from then on the Bus handle and
// its subscribers are good only for Close, and their slow paths return
// that first error. Always guarded: claiming the publisher role and
// subscriber records (Subscribe), the publisher's rescans and waits, a
// subscriber's waits (a parked subscriber looks again every 100 ms, so a
// truncation is noticed), NextBatch, CloseWrites,
// Stats, Published, Lag, Inspect, ReleaseDeadSubscribers, RemoveSubscriber,
// Close and the WaitSource check. Publish, TryPublish, Next, TryNext, Peek
// and Release are guarded as a whole only on a handle made WithFaultGuard
// (see BenchmarkFaultGuard). Slices returned by Peek are the caller's to
// touch, outside any guard.
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
package shmbus

import (
	"fmt"
	"reflect"
	"sync/atomic"

	"github.com/shmkit/shmkit/internal/options"
	"github.com/shmkit/shmkit/internal/shmerr"
	"github.com/shmkit/shmkit/layout"
)

// Bus is a publish/subscribe ring of T in shared memory. See the package
// documentation.
type Bus[T any] struct {
	core
	slots  []T        // Block
	oslots []oslot[T] // Overwrite
}

// oslot is an Overwrite slot: sequence word (message number + 1; 0 while
// being written) and value.
type oslot[T any] struct {
	seq atomic.Uint64
	v   T
}

// Create makes a bus of capacity slots of T in the segment named by spec.
// capacity is rounded up to a power of two (see layout.RoundCapacity). Options: WithOverflow,
// WithMaxSubscribers, and the common ones. It fails with fs.ErrExist if
// the object exists.
func Create[T any](spec string, capacity int, opts ...Option) (*Bus[T], error) {
	cfg, st, err := buildConfig("create", spec, opts)
	if err != nil {
		return nil, err
	}
	wrap := func(err error) error { return layout.WrapOp("shmbus", "create", spec, err) }
	t := reflect.TypeFor[T]()
	ti, err := layout.Describe(t)
	if err != nil {
		return nil, wrap(err)
	}
	if ti.Size == 0 {
		return nil, wrap(fmt.Errorf("%w: %s has size 0", ErrUnsupportedType, t))
	}
	if st.overflow != Block && st.overflow != Overwrite {
		return nil, wrap(fmt.Errorf("%w: overflow policy %d", shmerr.ErrBadOption, st.overflow))
	}
	if st.maxSubs < 1 || st.maxSubs > MaxSubscribers {
		return nil, wrap(fmt.Errorf("%w: %d subscribers (must be in [1, %d])", ErrCapacity, st.maxSubs, MaxSubscribers))
	}
	slots, err := layout.RoundCapacity(capacity, 1, maxCapacity)
	if err != nil {
		return nil, wrap(err)
	}
	capacity = int(slots)
	slotSize := slotSizeOf[T](st.overflow)
	if slots > maxDataBytes/slotSize {
		return nil, wrap(fmt.Errorf("%w: %d slots of %d bytes exceed the %s limit", ErrCapacity, slots, slotSize, layout.FormatBytes(maxDataBytes)))
	}
	d := layout.Desc{
		Kind:     layout.KindBus,
		Types:    []reflect.Type{t},
		Capacity: uint64(capacity),
		Params: [layout.MaxParams]uint64{
			paramElemSize: ti.Size,
			paramMaxSubs:  uint64(st.maxSubs),
			paramOverflow: uint64(st.overflow),
		},
		Regions: []layout.Region{
			{Size: controlSize, Align: layout.LineSize},
			{Size: uint64(st.maxSubs) * recordSize, Align: layout.LineSize},
			{Size: uint64(capacity) * slotSize, Align: max(ti.Align, layout.LineSize)},
		},
	}
	// A fresh object is zero-filled: tail 0, free records, no roles, and
	// Overwrite sequence words 0 (no message).
	seg, err := layout.Create(spec, d, nil, cfg.Layout...)
	if err != nil {
		return nil, err
	}
	b, err := newBus[T](seg, cfg, st)
	if err != nil {
		_ = seg.Close()
		return nil, err
	}
	return b, nil
}

func slotSizeOf[T any](o Overflow) uint64 {
	if o == Overwrite {
		return uint64(reflect.TypeFor[oslot[T]]().Size())
	}
	return uint64(reflect.TypeFor[T]().Size())
}

// Open attaches the bus in the segment named by spec. It fails with
// ErrTypeMismatch if the segment holds another kind or element type (or
// WithOverflow / WithMaxSubscribers name other settings than the bus's),
// and with ErrCorrupt if the geometry does not check out.
func Open[T any](spec string, opts ...Option) (*Bus[T], error) {
	cfg, st, err := buildConfig("open", spec, opts)
	if err != nil {
		return nil, err
	}
	t := reflect.TypeFor[T]()
	if _, err := layout.Describe(t); err != nil {
		return nil, layout.WrapOp("shmbus", "open", spec, err)
	}
	seg, err := layout.Open(spec, layout.Expect{Kind: layout.KindBus, Types: []reflect.Type{t}}, cfg.Layout...)
	if err != nil {
		return nil, err
	}
	b, err := newBus[T](seg, cfg, st)
	if err != nil {
		_ = seg.Close()
		return nil, err
	}
	return b, nil
}

func newBus[T any](seg *layout.Segment, cfg options.Config, st *settings) (*Bus[T], error) {
	name := seg.Raw().Spec().String()
	wrap := func(err error) error { return layout.WrapOp("shmbus", "open", name, err) }
	g, err := checkGeometry(seg)
	if err != nil {
		return nil, wrap(err)
	}
	if st.overflowSet && st.overflow != g.overflow {
		return nil, wrap(fmt.Errorf("%w: bus overflows by %s, WithOverflow(%s) asked", ErrTypeMismatch, g.overflow, st.overflow))
	}
	if st.maxSubsSet && st.maxSubs != g.maxSubs {
		return nil, wrap(fmt.Errorf("%w: bus has %d subscriber records, WithMaxSubscribers(%d) asked", ErrTypeMismatch, g.maxSubs, st.maxSubs))
	}
	size := uint64(reflect.TypeFor[T]().Size())
	slotSize := slotSizeOf[T](g.overflow)
	if g.elemSize != size || g.cap > maxDataBytes/slotSize || uint64(len(seg.Region(regionSlots))) != g.cap*slotSize {
		return nil, wrap(fmt.Errorf("%w: element size %d (want %d), slot region %d bytes for %d slots of %d bytes",
			ErrCorrupt, g.elemSize, size, len(seg.Region(regionSlots)), g.cap, slotSize))
	}
	ctl, recs, err := viewControl(seg, g)
	if err != nil {
		return nil, wrap(err)
	}
	b := &Bus[T]{}
	if g.overflow == Block {
		b.slots, err = layout.ViewSlice[T](seg, regionSlots, int(g.cap))
	} else {
		b.oslots, err = layout.ViewSlice[oslot[T]](seg, regionSlots, int(g.cap))
	}
	if err != nil {
		return nil, wrap(fmt.Errorf("slots: %w", err))
	}
	b.core.init(seg, g, ctl, recs, cfg)
	return b, nil
}

// Cap returns the capacity in messages.
func (b *Bus[T]) Cap() int { return int(b.cap) }

// Overflow returns the bus's overflow policy.
func (b *Bus[T]) Overflow() Overflow { return b.overflow }

// Segment returns the underlying segment (for tools).
func (b *Bus[T]) Segment() *layout.Segment { return b.seg }

// Stats returns a snapshot of the bus's shared state: published count, and
// per subscriber its name, owner, liveness, cursor, lag and lapped count.
// Any goroutine may call it. It fails with ErrClosed after Close.
func (b *Bus[T]) Stats() (Stats, error) {
	if b.closed.Load() {
		return Stats{}, b.errf("stats", ErrClosed)
	}
	st, err := b.stats()
	return st, b.errf("stats", err)
}

// Close closes the handle's subscribers, releases the publisher role if
// this handle holds it, and unmaps the segment (the object stays until
// Remove). Calling it again is a no-op.
func (b *Bus[T]) Close() error {
	if b.closed.Load() {
		return nil
	}
	b.subsMu.Lock()
	subs := make([]closer, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.subsMu.Unlock()
	for _, s := range subs {
		_ = s.closeLocked()
	}
	if b.pstate == roleHeld {
		b.releasePublisher()
	}
	b.pstate = roleClosed
	b.closed.Store(true)
	b.roomReady, b.pollDead = nil, nil
	return b.seg.Close()
}
