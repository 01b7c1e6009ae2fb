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
package shmbus

import (
	"context"
	"fmt"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/faultguard"
	"github.com/shmkit/shmkit/internal/options"
	"github.com/shmkit/shmkit/layout"
	shmsync "github.com/shmkit/shmkit/sync"
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
		return nil, wrap(fmt.Errorf("%w: overflow policy %d", errBadOption, st.overflow))
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

var errBadOption = fmt.Errorf("invalid option")

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

// releasePublisher gives up the publisher role, under the fault guard: a
// role word lost with truncated pages is simply forgotten.
func (b *Bus[T]) releasePublisher() {
	defer b.fg.Guard(nil, "close", faultguard.Enable())
	b.releaseWord(&b.ctl.publisher, publisherSlot)
}

// ---- publisher ----

// Publish appends v for every subscriber. In Block mode it waits while the
// slowest live subscriber is a capacity behind, until there is room or ctx
// is done; in Overwrite mode it never waits. The first call claims the
// publisher role. It fails with ErrClosed after CloseWrites.
func (b *Bus[T]) Publish(ctx context.Context, v T) (err error) {
	if b.guardAll {
		defer b.fg.Guard(&err, "publish", faultguard.Enable())
	}
	if b.pstate != roleHeld || b.fg.Faulted() {
		if err := b.claimPublisher(); err != nil {
			return b.errf("publish", err)
		}
	}
	t := b.tail
	if b.slots != nil {
		if t >= b.limit || b.ctl.gen.Load() != b.gen {
			if err := b.waitRoom(ctx); err != nil {
				return b.errf("publish", err)
			}
		}
		b.slots[t&(b.cap-1)] = v
	} else {
		storeSlot(&b.oslots[t&(b.cap-1)], t+1, &v)
	}
	b.tail = t + 1
	b.ctl.tail.Store(t + 1)
	b.ctl.notEmpty.Notify()
	return nil
}

// TryPublish is Publish that never waits: in Block mode it fails with
// ErrFull when the slowest live subscriber is a capacity behind.
func (b *Bus[T]) TryPublish(v T) (err error) {
	if b.guardAll {
		defer b.fg.Guard(&err, "publish", faultguard.Enable())
	}
	if b.pstate != roleHeld || b.fg.Faulted() {
		if err := b.claimPublisher(); err != nil {
			return b.errf("publish", err)
		}
	}
	t := b.tail
	if b.slots != nil {
		if t >= b.limit || b.ctl.gen.Load() != b.gen {
			ok, err := b.rescanGuarded()
			if err != nil {
				return b.errf("publish", err)
			}
			if !ok {
				return ErrFull
			}
		}
		b.slots[t&(b.cap-1)] = v
	} else {
		storeSlot(&b.oslots[t&(b.cap-1)], t+1, &v)
	}
	b.tail = t + 1
	b.ctl.tail.Store(t + 1)
	b.ctl.notEmpty.Notify()
	return nil
}

// CloseWrites marks the bus closed for writes: subscribers read what is
// left, then get ErrClosed; Publish fails with ErrClosed. It claims the
// publisher role if this handle does not hold it.
func (b *Bus[T]) CloseWrites() (err error) {
	if b.pstate != roleHeld || b.fg.Faulted() {
		if err := b.claimPublisher(); err != nil {
			return b.errf("close writes", err)
		}
	}
	defer b.fg.Guard(&err, "close writes", faultguard.Enable())
	b.ctl.closed.Store(1)
	b.ctl.notEmpty.Notify()
	b.pstate = roleClosed
	b.releaseWord(&b.ctl.publisher, publisherSlot)
	return nil
}

// Published returns the number of messages ever published.
// It is 0 after Close or a memory fault.
func (b *Bus[T]) Published() (n uint64) {
	if b.closed.Load() || b.fg.Faulted() {
		return 0
	}
	defer b.fg.Guard(nil, "published", faultguard.Enable())
	return b.ctl.tail.Load()
}

// ---- subscribers ----

// Subscriber reads every message of a bus from its cursor on. It is a
// sync.Waitable. Use it from one goroutine at a time.
type Subscriber[T any] struct {
	b         *Bus[T]
	rec       *record
	idx       int
	durable   bool
	state     uint8
	cursor    uint64 // private copy of rec.cursor
	tailCache uint64
	peeked    uint64
	pending   uint64 // missed messages to report (durable rejoin)
	sawClosed bool
	cerr      error
	dataReady func() bool
	closedH   atomic.Bool
}

// LaggedError is returned (wrapped) by Next and NextBatch when the
// subscriber was lapped: Missed messages were overwritten before it read
// them (or, in Block mode, while it was dead and skipped). The next call
// continues with the oldest message still retained.
type LaggedError struct {
	Missed uint64
}

func (e *LaggedError) Error() string {
	return fmt.Sprintf("%v: missed %d messages", ErrLagged, e.Missed)
}

// Unwrap makes errors.Is(err, ErrLagged) hold.
func (e *LaggedError) Unwrap() error { return ErrLagged }

// Subscribe adds a subscriber: anonymous from the next message (default),
// FromOldest, or Durable(name). It fails with ErrCapacity when every record
// is taken by a live (or durable) subscriber, and with ErrRoleTaken when a
// live process holds the durable name.
func (b *Bus[T]) Subscribe(opts ...SubscribeOption) (*Subscriber[T], error) {
	if b.closed.Load() {
		return nil, b.errf("subscribe", ErrClosed)
	}
	if err := b.fg.Err(); err != nil {
		return nil, err
	}
	var sc subConfig
	for _, o := range opts {
		if o.apply != nil {
			o.apply(&sc)
		}
	}
	j, err := b.join(sc)
	if err != nil {
		return nil, b.errf("subscribe", err)
	}
	s := &Subscriber[T]{b: b, rec: &b.recs[j.idx], idx: j.idx, durable: j.durable, state: roleHeld,
		cursor: j.cursor, tailCache: j.cursor, pending: j.missed}
	s.dataReady = func() bool {
		ok, err := s.refresh()
		if err != nil {
			s.cerr = err
			return true
		}
		return ok || s.sawClosed
	}
	b.subsMu.Lock()
	b.subs[s] = struct{}{}
	b.subsMu.Unlock()
	b.notifyRoom()
	return s, nil
}

// notifyRoom wakes a Block publisher (under the fault guard: a fault is
// recorded, for the next call to report).
func (c *core) notifyRoom() {
	defer c.fg.Guard(nil, "subscribe", faultguard.Enable())
	c.ctl.notFull.Notify()
}

// Name returns the durable name ("" for an anonymous subscriber).
func (s *Subscriber[T]) Name() (name string) {
	if !s.durable || s.closedH.Load() || s.b.fg.Faulted() {
		return ""
	}
	defer s.b.fg.Guard(nil, "name", faultguard.Enable())
	return s.rec.readName()
}

// Cursor returns the number of the next message this subscriber reads.
func (s *Subscriber[T]) Cursor() uint64 { return s.cursor }

// Lag returns how many published messages this subscriber has not read.
// It is 0 after Close or a memory fault.
func (s *Subscriber[T]) Lag() (n uint64) {
	if s.closedH.Load() || s.b.fg.Faulted() {
		return 0
	}
	defer s.b.fg.Guard(nil, "lag", faultguard.Enable())
	t := s.b.ctl.tail.Load()
	if t < s.cursor {
		return 0
	}
	return t - s.cursor
}

// refresh loads the closed flag and the tail, validates the tail against
// the cursor and reports whether a message is there.
func (s *Subscriber[T]) refresh() (bool, error) {
	if s.closedH.Load() {
		return true, nil
	}
	closed := s.b.ctl.closed.Load() != 0
	t := s.b.ctl.tail.Load()
	c := s.cursor
	if t < c || (s.b.slots != nil && t-c > s.b.cap) {
		return false, fmt.Errorf("%w: tail %d, cursor %d, capacity %d", ErrCorrupt, t, c, s.b.cap)
	}
	s.tailCache = t
	s.sawClosed = closed
	return t != c, nil
}

// avail waits (if ctx is not nil) until a message is there, and returns
// nil, or ErrEmpty (ctx nil), ErrClosed, ctx's error or a corruption.
//
// After a memory fault it returns the handle's fault error. The reload of
// the tail is per-item work (a subscriber keeping up reloads it for every
// message) and is guarded only on a WithFaultGuard handle; the wait runs
// under the fault guard always.
func (s *Subscriber[T]) avail(ctx context.Context) error {
	if err := s.b.fg.Err(); err != nil {
		return err
	}
	if s.state != roleHeld {
		return ErrClosed
	}
	for s.cursor == s.tailCache {
		ok, err := s.refresh()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if s.sawClosed {
			return ErrClosed
		}
		if ctx == nil {
			return ErrEmpty
		}
		if err := s.waitData(ctx); err != nil {
			return err
		}
		if s.state != roleHeld {
			return ErrClosed
		}
	}
	return nil
}

// waitData waits until a message is there, under the fault guard.
func (s *Subscriber[T]) waitData(ctx context.Context) (err error) {
	defer s.b.fg.Guard(&err, "next", faultguard.Enable())
	s.cerr = nil
	err = s.b.ctl.notEmpty.WaitPoll(ctx, s.b.policy, s.dataReady, subRecheck, recheck)
	if s.cerr != nil {
		err, s.cerr = s.cerr, nil
	}
	return err
}

// subRecheck bounds how long a parked subscriber sleeps without a wake
// before it looks at the tail again. A publisher always wakes it; the
// bound is for what never notifies: a segment truncated under it (the
// look then faults, and Next reports it instead of sleeping on forever).
const subRecheck = 100 * time.Millisecond

// recheck is the poll of a subscriber's wait: just look again.
func recheck() bool { return true }

// advance stores the new cursor and wakes a Block publisher waiting for it.
func (s *Subscriber[T]) advance(next uint64) {
	old := s.cursor
	s.cursor = next
	s.rec.cursor.Store(next)
	ctl := s.b.ctl
	if s.b.slots != nil && ctl.notFull.Waiting() && ctl.notFullAt.Load()-old-1 < next-old {
		ctl.notFull.Notify()
	}
}

// lagged reports a lap: move the cursor to the oldest message the
// publisher cannot be writing, count, and return the error.
func (s *Subscriber[T]) lagged() error {
	c := s.cursor
	t := s.b.ctl.tail.Load()
	if t < c+s.b.cap {
		return fmt.Errorf("%w: slot of message %d overwritten but tail is %d (capacity %d)", ErrCorrupt, c, t, s.b.cap)
	}
	next := t - s.b.cap + 1
	s.tailCache = t
	s.advance(next)
	s.rec.lapped.Add(1)
	s.rec.missed.Add(next - c)
	return &LaggedError{Missed: next - c}
}

// read copies message s.cursor (known published) into *v and advances.
func (s *Subscriber[T]) read(v *T) error {
	c := s.cursor
	mask := s.b.cap - 1
	if s.b.slots != nil {
		*v = s.b.slots[c&mask]
		s.advance(c + 1)
		return nil
	}
	if s.tailCache-c > s.b.cap {
		return s.lagged()
	}
	sl := &s.b.oslots[c&mask]
	if sl.seq.Load() == c+1 {
		loadSlot(sl, v)
		if sl.seq.Load() == c+1 {
			s.advance(c + 1)
			return nil
		}
	}
	var zero T
	*v = zero
	return s.lagged()
}

func (s *Subscriber[T]) takePending() error {
	m := s.pending
	s.pending = 0
	return &LaggedError{Missed: m}
}

// Next returns the next message, waiting until one is published, the bus
// is closed for writes and drained (ErrClosed), or ctx is done. The cursor
// advances before Next returns. A lapped subscriber gets an error wrapping
// ErrLagged (a *LaggedError saying how many it missed), and the following
// Next continues from the oldest retained message.
func (s *Subscriber[T]) Next(ctx context.Context) (v T, err error) {
	if s.b.guardAll {
		defer s.b.fg.Guard(&err, "next", faultguard.Enable())
	}
	if s.pending != 0 {
		return v, s.b.errf("next", s.takePending())
	}
	if err := s.avail(ctx); err != nil {
		return v, s.b.errf("next", err)
	}
	s.peeked = 0
	if err := s.read(&v); err != nil {
		return v, s.b.errf("next", err)
	}
	return v, nil
}

// TryNext is Next that never waits: ErrEmpty when nothing is there.
func (s *Subscriber[T]) TryNext() (v T, err error) {
	if s.b.guardAll {
		defer s.b.fg.Guard(&err, "next", faultguard.Enable())
	}
	if s.pending != 0 {
		return v, s.b.errf("next", s.takePending())
	}
	if err := s.avail(nil); err != nil {
		if err == ErrEmpty {
			return v, ErrEmpty
		}
		return v, s.b.errf("next", err)
	}
	s.peeked = 0
	if err := s.read(&v); err != nil {
		return v, s.b.errf("next", err)
	}
	return v, nil
}

// NextBatch waits until at least one message is there (as Next), then
// copies up to len(buf) messages into buf and returns how many. The cursor
// advances past them before it returns. In Overwrite mode a lap found
// after the first message ends the batch early; the next call reports it.
//
// NextBatch runs under the fault guard whatever the options.
func (s *Subscriber[T]) NextBatch(ctx context.Context, buf []T) (n int, err error) {
	if len(buf) == 0 {
		return 0, nil
	}
	if err := s.b.fg.Err(); err != nil {
		return 0, err
	}
	defer s.b.fg.Guard(&err, "next", faultguard.Enable())
	if s.pending != 0 {
		return 0, s.b.errf("next", s.takePending())
	}
	if err := s.avail(ctx); err != nil {
		return 0, s.b.errf("next", err)
	}
	s.peeked = 0
	c := s.cursor
	mask := s.b.cap - 1
	m := min(uint64(len(buf)), s.tailCache-c)
	if s.b.slots != nil {
		i := c & mask
		k := copy(buf[:m], s.b.slots[i:min(i+m, s.b.cap)])
		copy(buf[k:m], s.b.slots[:m-uint64(k)])
		s.advance(c + m)
		return int(m), nil
	}
	if s.tailCache-c > s.b.cap {
		return 0, s.b.errf("next", s.lagged())
	}
	got := 0
	for j := c; j < c+m; j++ {
		sl := &s.b.oslots[j&mask]
		if sl.seq.Load() != j+1 {
			break
		}
		loadSlot(sl, &buf[got])
		if sl.seq.Load() != j+1 {
			break
		}
		got++
	}
	if got == 0 {
		return 0, s.b.errf("next", s.lagged())
	}
	s.advance(c + uint64(got))
	return got, nil
}

// Peek returns up to n published messages at the cursor, in place in
// shared memory (Block mode only), without consuming them; Release(k)
// then consumes the first k. It may return fewer than n (at the wrap) and
// an empty slice when nothing is there; it never waits (see PeekWait).
// The publisher does not overwrite the peeked slots until they are
// released; the slice must not be used after Release, Next or Close. A
// subscriber SIGKILLed between Peek and Release sees the messages again
// when its durable successor resumes.
func (s *Subscriber[T]) Peek(n int) (p []T, err error) {
	if s.b.guardAll {
		defer s.b.fg.Guard(&err, "peek", faultguard.Enable())
	}
	if s.b.slots == nil {
		return nil, s.b.errf("peek", fmt.Errorf("%w: Peek on an Overwrite bus (the publisher may overwrite any slot); use Next", ErrUsage))
	}
	if s.pending != 0 {
		return nil, s.b.errf("peek", s.takePending())
	}
	if err := s.avail(nil); err != nil {
		if err == ErrEmpty {
			s.peeked = 0
			return s.b.slots[:0], nil
		}
		return nil, s.b.errf("peek", err)
	}
	if n <= 0 {
		s.peeked = 0
		return s.b.slots[:0], nil
	}
	c := s.cursor
	i := c & (s.b.cap - 1)
	k := min(uint64(n), s.tailCache-c, s.b.cap-i)
	s.peeked = k
	return s.b.slots[i : i+k : i+k], nil
}

// PeekWait is Peek that waits until at least one message is there (or the
// bus is closed and drained: ErrClosed, or ctx is done).
func (s *Subscriber[T]) PeekWait(ctx context.Context, n int) ([]T, error) {
	if s.b.slots != nil && s.pending == 0 {
		if err := s.avail(ctx); err != nil {
			return nil, s.b.errf("peek", err)
		}
	}
	return s.Peek(n)
}

// Release consumes the first k messages of the last Peek.
func (s *Subscriber[T]) Release(k int) (err error) {
	if s.b.guardAll {
		defer s.b.fg.Guard(&err, "release", faultguard.Enable())
	}
	if err := s.b.fg.Err(); err != nil {
		return err
	}
	if s.state != roleHeld {
		return s.b.errf("release", ErrClosed)
	}
	if k < 0 || uint64(k) > s.peeked {
		return s.b.errf("release", fmt.Errorf("%w: Release(%d) with %d messages peeked", ErrUsage, k, s.peeked))
	}
	s.peeked = 0
	if k > 0 {
		s.advance(s.cursor + uint64(k))
	}
	return nil
}

// WaitSource makes a Subscriber a sync.Waitable: a WaitSet reports it when
// a message is there (or the bus is closed for writes).
func (s *Subscriber[T]) WaitSource() (*shmsync.Notifier, func() bool) {
	ctl, rec, fg := s.b.ctl, s.rec, &s.b.fg
	return &ctl.notEmpty, func() (ok bool) {
		if s.closedH.Load() || fg.Faulted() {
			return true
		}
		// A fault here is recorded (the next call reports it) and makes
		// the source ready, so the WaitSet returns.
		ok = true
		defer fg.Guard(nil, "wait", faultguard.Enable())
		return ctl.closed.Load() != 0 || ctl.tail.Load() != rec.cursor.Load()
	}
}

// Close releases the subscriber's record at once: an anonymous one is
// freed, a durable one keeps its name and cursor for a later Subscribe. A
// Block publisher no longer waits for it. Calling it again is a no-op.
func (s *Subscriber[T]) Close() error {
	b := s.b
	b.subsMu.Lock()
	_, mine := b.subs[s]
	delete(b.subs, s)
	b.subsMu.Unlock()
	if !mine {
		return nil
	}
	return s.closeLocked()
}

func (s *Subscriber[T]) closeLocked() error {
	if s.state != roleHeld {
		return nil
	}
	s.state = roleClosed
	s.closedH.Store(true)
	s.b.leave(s.idx, s.durable)
	s.dataReady = nil
	return nil
}
