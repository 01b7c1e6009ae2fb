package shmbus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	stdsync "sync"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/faultguard"
	"github.com/shmkit/shmkit/internal/options"
	"github.com/shmkit/shmkit/internal/owner"
	"github.com/shmkit/shmkit/internal/proc"
	"github.com/shmkit/shmkit/layout"
	shmsync "github.com/shmkit/shmkit/sync"
)

// ErrUsage reports a call out of protocol order: Release of more than was
// peeked, Peek on an overwriting bus, and the like.
var ErrUsage = errors.New("shmbus: invalid call")

// Overflow is what Publish does when the slowest subscriber is a whole
// capacity behind. It is fixed at Create.
type Overflow uint8

const (
	// Block (the default): Publish waits until the slowest live subscriber
	// has read the oldest message.
	Block Overflow = 1
	// Overwrite: Publish never waits; a lapped subscriber gets ErrLagged.
	Overwrite Overflow = 2
)

func (o Overflow) String() string {
	switch o {
	case Block:
		return "block"
	case Overwrite:
		return "overwrite"
	}
	return fmt.Sprintf("overflow(%d)", uint8(o))
}

// settings are the bus's own options.
type settings struct {
	overflow    Overflow
	overflowSet bool
	maxSubs     int
	maxSubsSet  bool
	faultGuard  bool
}

// WithFaultGuard runs every call of the handle and its subscribers under
// the fault guard, the per-item fast paths (Publish, TryPublish, Next,
// TryNext, Peek, Release) included: a segment truncated by another process
// then gives an error wrapping ErrCorrupt and ErrTruncated from whichever
// call touches a lost page, never SIGBUS. It costs a few ns per call (see
// BenchmarkFaultGuard); without it those calls guard only their slow paths
// (claiming the publisher role, rescanning the subscribers, waiting). Segments that cannot shrink (memfd, which is sealed, and
// SysV) do not need it.
func WithFaultGuard() Option {
	return options.New("shmbus", "WithFaultGuard", func(c *options.Config) { c.Own.(*settings).faultGuard = true })
}

// ErrTruncated is wrapped by the error a bus call returns when the segment
// was truncated under it (a peer with write access called ftruncate on a
// posix: or file: segment, and the pages the call touched are gone):
// "segment truncated by another process". It wraps ErrCorrupt; the Bus
// handle and its subscribers are then good only for Close, and every other
// call returns that same first error. It is the same value as
// shmring.ErrTruncated.
var ErrTruncated = faultguard.ErrTruncated

// DefaultMaxSubscribers is the subscriber table size unless
// WithMaxSubscribers says otherwise.
const DefaultMaxSubscribers = 16

// MaxSubscribers bounds WithMaxSubscribers.
const MaxSubscribers = 4096

// WithOverflow sets the overflow policy of a new bus: Block (default) or
// Overwrite. Given to Open, it must match the bus's policy.
func WithOverflow(p Overflow) Option {
	return options.New("shmbus", "WithOverflow", func(c *options.Config) {
		s := c.Own.(*settings)
		s.overflow, s.overflowSet = p, true
	})
}

// WithMaxSubscribers sets how many subscribers (live, dead-but-recorded and
// durable) a new bus can hold, default DefaultMaxSubscribers, at most
// MaxSubscribers. Given to Open, it must match.
func WithMaxSubscribers(n int) Option {
	return options.New("shmbus", "WithMaxSubscribers", func(c *options.Config) {
		s := c.Own.(*settings)
		s.maxSubs, s.maxSubsSet = n, true
	})
}

func buildConfig(op, spec string, opts []Option) (options.Config, *settings, error) {
	st := &settings{overflow: Block, maxSubs: DefaultMaxSubscribers}
	cfg, err := options.Build("shmbus", st, opts)
	if err != nil {
		return cfg, nil, options.BuildError("shmbus", op, spec, err)
	}
	return cfg, st, nil
}

// control is the shared control block, region 0 of every bus segment. Each
// hot word sits alone on a 128-byte line; offsets are asserted in
// layout_unsafe_test.go.
type control struct {
	// tail counts messages ever published; only the publisher stores it.
	tail atomic.Uint64
	_    [layout.LineSize - 8]byte
	// notEmpty is where subscribers (and WaitSets) park; Publish notifies.
	notEmpty shmsync.Notifier
	_        [layout.LineSize - 8]byte
	// notFull is where a Block publisher parks; notFullAt is the cursor
	// the slowest subscriber must reach for it to have room, so only the
	// advance that crosses it wakes the publisher.
	notFull   shmsync.Notifier
	notFullAt atomic.Uint64
	_         [layout.LineSize - 16]byte
	// gen is bumped by every subscriber that joins (or rejoins): a Block
	// publisher re-reads the table when it changes. closed is set by
	// CloseWrites. Both are written rarely and read by the publisher on
	// every publish (gen) or by subscribers that find the bus empty.
	gen    atomic.Uint64
	closed atomic.Uint32
	_      uint32
	_      [layout.LineSize - 16]byte
	// publisher is the publisher role word (a proc.Word, 0 when free);
	// lock serializes changes of the subscriber table (a proc.Word too);
	// tableFree is where a Subscribe waiting for lock parks.
	publisher atomic.Uint64
	lock      atomic.Uint64
	tableFree shmsync.Notifier
	_         [layout.LineSize - 24]byte
}

var controlSize = uint64(reflect.TypeFor[control]().Size())

// Subscriber record states.
const (
	stateFree    uint32 = 0
	stateAnon    uint32 = 1
	stateDurable uint32 = 2
)

// MaxNameLen bounds a durable subscriber's name.
const MaxNameLen = 64

// record is one subscriber's entry in the table (region 1). Its cursor is
// alone on a line: only its subscriber writes it, once per message.
type record struct {
	// cursor is the next message this subscriber reads.
	cursor atomic.Uint64
	_      [layout.LineSize - 8]byte
	// owner is the subscriber's proc.Word, 0 when none.
	owner   atomic.Uint64
	state   atomic.Uint32
	nameLen atomic.Uint32
	// lapped counts the times the subscriber was found lapped (or skipped
	// while dead); missed the messages it lost that way.
	lapped atomic.Uint64
	missed atomic.Uint64
	name   [MaxNameLen]byte
	_      [layout.LineSize - 32 - MaxNameLen]byte
}

var recordSize = uint64(reflect.TypeFor[record]().Size())

// readName returns the record's name, bounded.
func (r *record) readName() string {
	n := r.nameLen.Load()
	if n > MaxNameLen {
		n = MaxNameLen
	}
	return string(r.name[:n])
}

func (r *record) nameIs(name string) bool {
	n := r.nameLen.Load()
	return int(n) == len(name) && n <= MaxNameLen && bytes.Equal(r.name[:n], []byte(name))
}

// Header parameter words.
const (
	paramElemSize = 0
	paramMaxSubs  = 1
	paramOverflow = 2
)

// Region indexes.
const (
	regionControl = 0
	regionRecords = 1
	regionSlots   = 2
)

// maxCapacity bounds the slot count (cursor differences stay far from
// wrapping).
const maxCapacity = 1 << 40

// maxDataBytes bounds the slot region (layout's region limit).
const maxDataBytes = 1 << 46

// geometry is what a bus segment's header says, validated.
type geometry struct {
	name     string
	cap      uint64
	maxSubs  int
	overflow Overflow
	elemSize uint64
}

func checkGeometry(s *layout.Segment) (geometry, error) {
	h := s.Header()
	g := geometry{name: s.Raw().Spec().String()}
	if h.Kind != layout.KindBus {
		return g, fmt.Errorf("%w: segment holds a %s, not a bus", ErrTypeMismatch, h.Kind)
	}
	n := h.Capacity
	if n == 0 || n&(n-1) != 0 || n > maxCapacity {
		return g, fmt.Errorf("%w: capacity %d (must be a power of two in [1, %d])", ErrCorrupt, n, uint64(maxCapacity))
	}
	g.cap = n
	m := h.Params[paramMaxSubs]
	if m == 0 || m > MaxSubscribers {
		return g, fmt.Errorf("%w: %d subscriber records (must be in [1, %d])", ErrCorrupt, m, MaxSubscribers)
	}
	g.maxSubs = int(m)
	switch o := Overflow(h.Params[paramOverflow]); {
	case h.Params[paramOverflow] > 0xff:
		return g, fmt.Errorf("%w: overflow policy %d", ErrCorrupt, h.Params[paramOverflow])
	case o == Block || o == Overwrite:
		g.overflow = o
	default:
		return g, fmt.Errorf("%w: overflow policy %d", ErrCorrupt, h.Params[paramOverflow])
	}
	g.elemSize = h.Params[paramElemSize]
	if s.NumRegions() != 3 {
		return g, fmt.Errorf("%w: %d regions, want 3", ErrCorrupt, s.NumRegions())
	}
	if uint64(len(s.Region(regionRecords))) != uint64(g.maxSubs)*recordSize {
		return g, fmt.Errorf("%w: subscriber table of %d bytes for %d records", ErrCorrupt, len(s.Region(regionRecords)), g.maxSubs)
	}
	return g, nil
}

func viewControl(s *layout.Segment, g geometry) (*control, []record, error) {
	ctl, err := layout.View[control](s, regionControl)
	if err != nil {
		return nil, nil, fmt.Errorf("control block: %w", err)
	}
	recs, err := layout.ViewSlice[record](s, regionRecords, g.maxSubs)
	if err != nil {
		return nil, nil, fmt.Errorf("subscriber table: %w", err)
	}
	return ctl, recs, nil
}

// Holder describes the process named by an owner word.
type Holder = owner.Holder

// core is the part of a bus handle that does not depend on T.
type core struct {
	seg  *layout.Segment
	ctl  *control
	recs []record
	geometry
	policy shmsync.WaitPolicy
	closed atomic.Bool
	subsMu stdsync.Mutex
	subs   map[closer]struct{}
	// fg holds the segment's address range and the error of the first
	// memory fault any call of this handle or its subscribers caught:
	// every later call but Close returns it.
	fg faultguard.Latch
	// guardAll is set by WithFaultGuard: the per-item calls run under the
	// fault guard too.
	guardAll bool
	_        [layout.LineSize]byte

	// Publisher side (one goroutine).
	pstate    uint8
	tail      uint64 // private copy of ctl.tail
	limit     uint64 // Block: publish while tail < limit (min live cursor + cap)
	gen       uint64 // ctl.gen when limit was computed
	dead      []uint64
	perr      error
	roomReady func() bool
	pollDead  func() bool
	_         [layout.LineSize]byte
}

type closer interface{ closeLocked() error }

const (
	roleNone uint8 = iota
	roleHeld
	roleClosed
)

// pollEvery is how often a blocked Block publisher asks whether the
// subscribers holding it back are still alive.
const pollEvery = 2 * time.Millisecond

func (c *core) init(seg *layout.Segment, g geometry, ctl *control, recs []record, cfg options.Config) {
	c.seg, c.geometry, c.ctl, c.recs = seg, g, ctl, recs
	c.policy = cfg.PolicyOr(shmsync.SpinThenPark)
	c.fg.Init("shmbus", c.name, seg.Raw().Bytes())
	if s, ok := cfg.Own.(*settings); ok {
		c.guardAll = s.faultGuard
	}
	c.dead = make([]uint64, len(recs))
	c.subs = map[closer]struct{}{}
	c.roomReady = func() bool {
		ok, err := c.rescan()
		if err != nil {
			c.perr = err
			return true
		}
		return ok
	}
	c.pollDead = c.markDead
}

func (c *core) errf(op string, err error) error { return layout.WrapOp("shmbus", op, c.name, err) }

// rescan recomputes the Block publisher's limit from the subscriber table:
// the smallest cursor of the records whose owner is not known to be dead
// (and never more than the tail), plus the capacity. It reports whether
// the next message fits.
func (c *core) rescan() (bool, error) {
	c.gen = c.ctl.gen.Load()
	t := c.tail
	low := t
	for i := range c.recs {
		r := &c.recs[i]
		if r.state.Load() == stateFree {
			continue
		}
		o := r.owner.Load()
		if o == 0 || o == c.dead[i] {
			continue
		}
		cur := r.cursor.Load()
		if cur > t {
			return false, fmt.Errorf("%w: subscriber %d's cursor %d is past the tail %d", ErrCorrupt, i, cur, t)
		}
		low = min(low, cur)
	}
	c.limit = low + c.cap
	return t < c.limit, nil
}

// rescanGuarded is rescan for TryPublish, whose fast path is not guarded:
// the rescan is its slow path, and is.
func (c *core) rescanGuarded() (ok bool, err error) {
	defer c.fg.Guard(&err, "publish", faultguard.Enable())
	return c.rescan()
}

// markDead looks at the owners of the records that hold the publisher
// back and remembers those that are certainly dead, so rescan skips them.
// It reports whether it found any.
func (c *core) markDead() bool {
	found := false
	t := c.tail
	for i := range c.recs {
		r := &c.recs[i]
		if r.state.Load() == stateFree {
			continue
		}
		o := r.owner.Load()
		if o == 0 || o == c.dead[i] {
			continue
		}
		if cur := r.cursor.Load(); t-cur < c.cap {
			continue
		}
		if proc.Dead(proc.FromWord(o)) {
			c.dead[i] = o
			found = true
		}
	}
	return found
}

// waitRoom blocks a Block publisher until the next message fits.
// It runs under the fault guard, the whole wait.
func (c *core) waitRoom(ctx context.Context) (err error) {
	defer c.fg.Guard(&err, "publish", faultguard.Enable())
	if ok, err := c.rescan(); err != nil || ok {
		return err
	}
	c.perr = nil
	if target := c.tail - c.cap + 1; c.ctl.notFullAt.Load() != target {
		c.ctl.notFullAt.Store(target)
	}
	err = c.ctl.notFull.WaitPoll(ctx, c.policy, c.roomReady, pollEvery, c.pollDead)
	if c.perr != nil {
		err, c.perr = c.perr, nil
	}
	return err
}

// claimPublisher takes the publisher role: free, held by a dead process, or
// left by a dropped handle of this process.
// It runs under the fault guard, and returns the handle's fault error
// after a fault.
func (c *core) claimPublisher() (err error) {
	if err := c.fg.Err(); err != nil {
		return err
	}
	switch c.pstate {
	case roleHeld:
		return nil
	case roleClosed:
		return ErrClosed
	}
	if c.closed.Load() {
		return ErrClosed
	}
	defer c.fg.Guard(&err, "claim publisher", faultguard.Enable())
	if err := c.claimWord(&c.ctl.publisher, publisherSlot, "the publisher role"); err != nil {
		return err
	}
	if c.ctl.closed.Load() != 0 {
		c.releaseWord(&c.ctl.publisher, publisherSlot)
		return fmt.Errorf("%w: closed for writes", ErrClosed)
	}
	c.tail = c.ctl.tail.Load()
	c.limit, c.gen = 0, c.ctl.gen.Load()-1 // force a rescan
	c.pstate = roleHeld
	return nil
}

// Slots of owner.Keys: the publisher role, else a record index.
const publisherSlot = -1

// claimWord claims an owner word of this bus for this handle (owner.Claim).
func (c *core) claimWord(word *atomic.Uint64, slot int, what string) error {
	return owner.Claim(word, owner.KeyOf(c.seg, slot), what)
}

func (c *core) releaseWord(word *atomic.Uint64, slot int) {
	owner.Release(word, owner.KeyOf(c.seg, slot))
}

// lockTable takes the subscriber-table lock. A holder that died is
// replaced; a live holder that keeps it past ctx fails the call.
func (c *core) lockTable(ctx context.Context) error {
	me := proc.Self().Word()
	ready := func() bool { return c.ctl.lock.CompareAndSwap(0, me) }
	poll := func() bool {
		w := c.ctl.lock.Load()
		if w != 0 && w != me && proc.Dead(proc.FromWord(w)) {
			return c.ctl.lock.CompareAndSwap(w, 0)
		}
		return false
	}
	if err := c.ctl.tableFree.WaitPoll(ctx, c.policy, ready, pollEvery, poll); err != nil {
		return fmt.Errorf("%w: the subscriber table stays locked by %s: %w", ErrRoleTaken, owner.Decode(c.ctl.lock.Load()), err)
	}
	return nil
}

func (c *core) unlockTable() {
	c.ctl.lock.CompareAndSwap(proc.Self().Word(), 0)
	c.ctl.tableFree.Notify()
}

// ---- joining ----

type subConfig struct {
	oldest bool
	name   string
}

// SubscribeOption configures Subscribe.
type SubscribeOption struct {
	apply func(*subConfig)
}

// FromOldest makes a new subscriber start at the oldest message still in
// the ring (at most capacity-1 back: the one the publisher may be
// overwriting right now is not counted as retained). The default is the
// next message published. A durable subscriber resuming its cursor ignores
// it.
func FromOldest() SubscribeOption {
	return SubscribeOption{func(c *subConfig) { c.oldest = true }}
}

// Durable names the subscriber: its record (cursor, counters) outlives the
// process, and a later Subscribe with the same name resumes after the last
// message its predecessor consumed. At most one live process holds a name.
func Durable(name string) SubscribeOption {
	return SubscribeOption{func(c *subConfig) { c.name = name }}
}

// joined is what join returns.
type joined struct {
	idx     int
	cursor  uint64
	missed  uint64 // lapped while away (Block: skipped while dead)
	durable bool
}

// join claims a subscriber record and sets its cursor (see the package doc
// for the protocol that keeps a Block publisher from lapping a joiner).
// It runs under the fault guard.
func (c *core) join(sc subConfig) (j joined, err error) {
	defer c.fg.Guard(&err, "subscribe", faultguard.Enable())
	if sc.name != "" && (len(sc.name) > MaxNameLen) {
		return j, fmt.Errorf("%w: durable name of %d bytes (at most %d)", ErrCapacity, len(sc.name), MaxNameLen)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.lockTable(ctx); err != nil {
		return j, err
	}
	defer c.unlockTable()
	me := proc.Self().Word()

	idx, resume := -1, false
	if sc.name != "" {
		j.durable = true
		for i := range c.recs {
			r := &c.recs[i]
			if r.state.Load() == stateDurable && r.nameIs(sc.name) {
				if err := c.claimWord(&r.owner, i, fmt.Sprintf("durable subscriber %q", sc.name)); err != nil {
					return j, err
				}
				idx, resume = i, true
				break
			}
		}
	}
	if idx < 0 {
		idx = c.claimFree(me)
		if idx < 0 {
			return j, fmt.Errorf("%w: all %d subscriber records are in use", ErrCapacity, len(c.recs))
		}
		owner.Note(owner.KeyOf(c.seg, idx))
	}
	r := &c.recs[idx]
	j.idx = idx
	t0 := c.ctl.tail.Load()
	var cur uint64
	if resume {
		cur = r.cursor.Load()
		if cur > t0 {
			c.releaseWord(&r.owner, idx)
			return j, fmt.Errorf("%w: durable subscriber %q's cursor %d is past the tail %d", ErrCorrupt, sc.name, cur, t0)
		}
	} else {
		cur = t0
		if sc.oldest {
			cur = t0 - min(t0, c.cap-1)
		}
		r.lapped.Store(0)
		r.missed.Store(0)
		r.cursor.Store(cur)
		if j.durable {
			copy(r.name[:], sc.name)
			r.nameLen.Store(uint32(len(sc.name)))
			r.state.Store(stateDurable)
		} else {
			r.nameLen.Store(0)
			r.state.Store(stateAnon)
		}
	}
	// The cursor is in place: make a Block publisher re-read the table
	// before its next message, then see how far it may already be.
	c.ctl.gen.Add(1)
	t1 := c.ctl.tail.Load()
	if t1 < cur {
		c.releaseWord(&r.owner, idx)
		return j, fmt.Errorf("%w: tail %d moved behind cursor %d", ErrCorrupt, t1, cur)
	}
	switch {
	case !resume && !sc.oldest:
		cur = t1 // from the next message: everything before t1 was published before we joined
	case t1-cur >= c.cap && c.overflow == Block:
		// Skipped while away (or, joining from the oldest, the publisher
		// moved on): start at the oldest message it cannot be overwriting.
		next := t1 - c.cap + 1
		if resume {
			j.missed = next - cur
			r.lapped.Add(1)
			r.missed.Add(next - cur)
		}
		cur = next
	case sc.oldest && !resume && t1-cur >= c.cap:
		cur = t1 - c.cap + 1
	}
	r.cursor.Store(cur)
	j.cursor = cur
	return j, nil
}

// claimFree claims a free record, or else one of a dead anonymous
// subscriber, for this process and returns its index (-1: none).
func (c *core) claimFree(me uint64) int {
	for i := range c.recs {
		r := &c.recs[i]
		if r.state.Load() == stateFree && r.owner.CompareAndSwap(0, me) {
			if r.state.Load() == stateFree {
				return i
			}
			r.owner.CompareAndSwap(me, 0)
		}
	}
	for i := range c.recs {
		r := &c.recs[i]
		st := r.state.Load()
		if st == stateDurable {
			continue
		}
		o := r.owner.Load()
		if o != 0 && o != me && proc.Dead(proc.FromWord(o)) && r.owner.CompareAndSwap(o, me) {
			r.state.Store(stateFree)
			return i
		}
	}
	return -1
}

// leave releases a subscriber record: an anonymous one is freed, a durable
// one keeps its name and cursor with no owner. The publisher is woken: it
// may have been waiting for this subscriber.
// It runs under the fault guard: a record lost with truncated pages is
// simply forgotten.
func (c *core) leave(idx int, durable bool) {
	defer c.fg.Guard(nil, "close", faultguard.Enable())
	r := &c.recs[idx]
	me := proc.Self().Word()
	if r.owner.Load() == me && !durable {
		r.state.Store(stateFree)
	}
	c.releaseWord(&r.owner, idx)
	c.ctl.notFull.Notify()
}

// ---- stats ----

// SubscriberStats describes one subscriber record.
type SubscriberStats struct {
	Index   int
	Name    string // "" for an anonymous subscriber
	Durable bool
	Owner   Holder // PID 0: a durable subscriber with no process attached
	Alive   bool   // Owner.Alive (false when no process is attached)
	Cursor  uint64 // the next message it reads
	Lag     uint64 // published - cursor (clamped)
	Lapped  uint64 // times it was lapped or skipped while dead
	Missed  uint64 // messages it lost that way
}

// Stats is a snapshot of a bus's shared state, for tools and monitoring.
type Stats struct {
	Kind              layout.Kind
	Overflow          Overflow
	Cap               uint64
	MaxSubscribers    int
	Published         uint64 // messages ever published (the tail)
	Closed            bool   // CloseWrites was called
	Publisher         Holder
	PublisherWaiting  bool // the publisher may be parked on "not full"
	SubscriberWaiting bool
	Subscribers       []SubscriberStats
}

// stats reads the shared state. Cursors past the tail are reported with an
// ErrCorrupt (the snapshot is filled in all the same).
// It runs under the fault guard and returns the fault error after a fault.
func (c *core) stats() (s Stats, err error) {
	if err := c.fg.Err(); err != nil {
		return Stats{}, err
	}
	defer c.fg.Guard(&err, "stats", faultguard.Enable())
	s = Stats{Kind: layout.KindBus, Overflow: c.overflow, Cap: c.cap, MaxSubscribers: len(c.recs)}
	s.Published = c.ctl.tail.Load()
	s.Closed = c.ctl.closed.Load() != 0
	s.Publisher = owner.Decode(c.ctl.publisher.Load())
	s.PublisherWaiting = c.ctl.notFull.Waiting()
	s.SubscriberWaiting = c.ctl.notEmpty.Waiting()
	var corrupt error
	for i := range c.recs {
		r := &c.recs[i]
		st := r.state.Load()
		if st == stateFree {
			continue
		}
		ss := SubscriberStats{Index: i, Durable: st == stateDurable}
		if st != stateAnon && st != stateDurable && corrupt == nil {
			corrupt = fmt.Errorf("%w: subscriber %d has state %d", ErrCorrupt, i, st)
		}
		if ss.Durable {
			ss.Name = r.readName()
		}
		ss.Owner = owner.Decode(r.owner.Load())
		ss.Alive = ss.Owner.Alive
		ss.Cursor = r.cursor.Load()
		if ss.Cursor <= s.Published {
			ss.Lag = s.Published - ss.Cursor
		} else if t := c.ctl.tail.Load(); ss.Cursor > t && corrupt == nil {
			corrupt = fmt.Errorf("%w: subscriber %d's cursor %d is past the tail %d", ErrCorrupt, i, ss.Cursor, t)
		}
		ss.Lapped = r.lapped.Load()
		ss.Missed = r.missed.Load()
		s.Subscribers = append(s.Subscribers, ss)
	}
	return s, corrupt
}

// inspectCore builds a core for tools over a validated segment.
func inspectCore(s *layout.Segment) (*core, error) {
	g, err := checkGeometry(s)
	if err != nil {
		return nil, layout.WrapOp("shmbus", "inspect", s.Raw().Spec().String(), err)
	}
	ctl, recs, err := viewControl(s, g)
	if err != nil {
		return nil, layout.WrapOp("shmbus", "inspect", g.name, err)
	}
	c := &core{seg: s, geometry: g, ctl: ctl, recs: recs}
	c.fg.Init("shmbus", g.name, s.Raw().Bytes())
	return c, nil
}

// Inspect reports the state of a bus segment opened by a tool with
// layout.Open(spec, layout.Expect{Kind: layout.KindAny}), without knowing
// its element type. It claims nothing and writes nothing.
func Inspect(s *layout.Segment) (Stats, error) {
	c, err := inspectCore(s)
	if err != nil {
		return Stats{}, err
	}
	st, err := c.stats()
	return st, layout.WrapOp("shmbus", "inspect", c.name, err)
}

// ReleaseDeadSubscribers frees the records of anonymous subscribers whose
// process has died, and the publisher role if its holder has died, and
// returns what it released. It is for tools (shmctl doctor --fix): a Block
// publisher already skips dead subscribers, and a new subscriber reuses a
// dead one's record when no free one is left. Durable records are left
// alone (their cursor is waiting for their process to come back); see
// RemoveSubscriber.
func ReleaseDeadSubscribers(s *layout.Segment) (released []SubscriberStats, err error) {
	c, err := inspectCore(s)
	if err != nil {
		return nil, err
	}
	defer c.fg.Guard(&err, "release dead subscribers", faultguard.Enable())
	for _, h := range owner.ReleaseDead(&c.ctl.publisher) {
		released = append(released, SubscriberStats{Index: -1, Name: "(publisher)", Owner: h})
	}
	for i := range c.recs {
		r := &c.recs[i]
		if r.state.Load() != stateAnon {
			continue
		}
		w := r.owner.Load()
		if w == 0 {
			continue
		}
		h := owner.Decode(w)
		if h.Alive {
			continue
		}
		ss := SubscriberStats{Index: i, Owner: h, Cursor: r.cursor.Load(), Lapped: r.lapped.Load(), Missed: r.missed.Load()}
		r.state.Store(stateFree)
		if r.owner.CompareAndSwap(w, 0) {
			released = append(released, ss)
		} else {
			r.state.Store(stateAnon) // claimed meanwhile
		}
	}
	c.ctl.notFull.Notify()
	return released, nil
}

// RemoveSubscriber removes the durable subscriber named name from the bus
// segment s, so its cursor no longer holds anything and its record is free.
// It refuses (ErrRoleTaken) while a live process holds it.
func RemoveSubscriber(s *layout.Segment, name string) (err error) {
	c, err := inspectCore(s)
	if err != nil {
		return err
	}
	defer c.fg.Guard(&err, "remove subscriber", faultguard.Enable())
	for i := range c.recs {
		r := &c.recs[i]
		if r.state.Load() != stateDurable || !r.nameIs(name) {
			continue
		}
		w := r.owner.Load()
		if h := owner.Decode(w); h.Alive {
			return layout.WrapOp("shmbus", "remove subscriber", c.name, fmt.Errorf("%w: durable subscriber %q is held by live %s", ErrRoleTaken, name, h))
		}
		if !r.owner.CompareAndSwap(w, 0) {
			return layout.WrapOp("shmbus", "remove subscriber", c.name, fmt.Errorf("%w: durable subscriber %q was just claimed", ErrRoleTaken, name))
		}
		r.nameLen.Store(0)
		r.state.Store(stateFree)
		c.ctl.notFull.Notify()
		return nil
	}
	return layout.WrapOp("shmbus", "remove subscriber", c.name, fmt.Errorf("no durable subscriber %q: %w", name, errNotFound))
}

var errNotFound = errors.New("not found")
