package shmring

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/faultguard"
	"github.com/shmkit/shmkit/internal/options"
	"github.com/shmkit/shmkit/internal/owner"
	"github.com/shmkit/shmkit/layout"
	shmsync "github.com/shmkit/shmkit/sync"
)

// ErrCapacity reports a capacity that is zero, negative, not a power of two,
// or too large.
var ErrCapacity = layout.ErrCapacity

// ErrTooLarge reports a byte-ring record larger than the ring can ever hold
// (see ByteRing.MaxRecord).
var ErrTooLarge = errors.New("shmring: record larger than the ring allows")

// ErrUsage reports a call out of protocol order: Publish/Commit of more than
// was claimed, Advance past what was peeked, and the like.
var ErrUsage = errors.New("shmring: invalid call")

// control is the shared control block, region 0 of every ring segment.
//
// Each hot word sits alone on a 128-byte line (two cache lines: the
// adjacent-line prefetcher pairs them), so the producer's tail stores never
// invalidate the line holding the consumer's head and vice versa. The
// notifiers get lines of their own too: in steady state nobody writes them,
// so each side's per-item Notify is an atomic load that hits in its cache.
// Offsets are asserted in layout_unsafe_test.go.
type control struct {
	// tail counts items (Ring) or bytes (ByteRing) ever published. Only the
	// producer stores it; one atomic store per Publish is what makes items
	// visible.
	tail atomic.Uint64
	_    [layout.LineSize - 8]byte
	// head counts items (bytes) ever released by the consumer.
	head atomic.Uint64
	_    [layout.LineSize - 8]byte
	// notEmpty is where the consumer (or a WaitSet) parks; the producer
	// notifies it. Its parked bit already makes it one wake per park: the
	// wake clears the bit, and later publishes skip the futex call until
	// a consumer parks again.
	notEmpty shmsync.Notifier
	_        [layout.LineSize - 8]byte
	// notFull is where the producer parks; the consumer notifies it.
	// notFullAt is the head the producer needs before it has room: only
	// the release that moves the head to or past it wakes the producer.
	notFull   shmsync.Notifier
	notFullAt atomic.Uint64
	_         [layout.LineSize - 16]byte
	// producer and consumer are the role words: 0 when free, else
	// the holder's proc.Word (pid and start time; see internal/proc).
	producer atomic.Uint64
	consumer atomic.Uint64
	// writesClosed is set (once, for good) by CloseWrites, after the
	// producer's last publish: a consumer that finds the ring empty and
	// this set has read everything.
	writesClosed atomic.Uint64
	_            [layout.LineSize - 24]byte
}

// controlSize is the size of the control region.
var controlSize = uint64(reflect.TypeFor[control]().Size())

// parkRecheck bounds every park of a blocked call: it looks at the ring
// again at least this often even if no wake comes. Wakes are never lost by
// the protocol; this is what makes a peer that truncated the segment (the
// look then faults, and the fault guard reports it) or scribbled the
// notifier word a delay instead of a hang.
const parkRecheck = 100 * time.Millisecond

// recheck is the poll of a blocked call: nothing to repair, just look again.
func recheck() bool { return true }

// defaultPolicy is how a ring handle waits unless WithWaitPolicy says
// otherwise.
var defaultPolicy = shmsync.SpinThenPark

// settings are shmring's own options (options.Config.Own).
type settings struct {
	faultGuard bool
}

// WithFaultGuard runs every call of the handle under the fault guard, the
// per-item fast paths (Push, Pop, TryPush, TryPop, Claim, Publish, Peek,
// Advance, and the ByteRing's Reserve, Commit, Write, TryWrite, Read,
// ReadWait, Release, ReadInto, ...) included: a segment truncated by
// another process then gives an error wrapping ErrCorrupt from whichever
// call touches a lost page, never SIGBUS. It costs about 10 ns per call
// (see BenchmarkFaultGuard); without it those calls guard only their slow
// paths. Segments that cannot shrink (memfd, which is sealed, and SysV)
// do not need it.
func WithFaultGuard() Option {
	return options.New("shmring", "WithFaultGuard", func(c *options.Config) {
		c.Own.(*settings).faultGuard = true
	})
}

// buildConfig applies the options of Create and Open.
func buildConfig(op, spec string, opts []Option) (options.Config, error) {
	cfg, err := options.Build("shmring", &settings{}, opts)
	if err != nil {
		return cfg, options.BuildError("shmring", op, spec, err)
	}
	return cfg, nil
}

// Role states of a handle. roleHeld is the only state the fast paths
// accept; every other value sends them to the slow path, which claims the
// role or reports ErrClosed.
const (
	roleNone uint8 = iota
	roleHeld
	roleClosed
	roleFaulted // a memory fault hit this side: only Close is left
)

// core is the part of a ring handle that does not depend on the element
// type: control block, cursors and their caches, roles and waiting.
//
// Producer fields are touched only by the producer goroutine, consumer
// fields only by the consumer goroutine, so one handle can serve as both
// ends from two goroutines; the two groups are padded apart so that doing
// so causes no false sharing in this process either.
type core struct {
	seg    *layout.Segment
	ctl    *control
	cap    uint64
	mask   uint64
	name   string
	policy shmsync.WaitPolicy
	// closed is set by Close; Len and Stats, which any goroutine may call,
	// check it instead of the role states (owned by the role goroutines).
	closed atomic.Bool
	// fg holds the address range of the whole segment (a memory fault
	// inside it is a truncated segment, anything else is a bug: see
	// guardP) and the error of the first memory fault any call of this
	// handle caught; every later call (but Close) returns it.
	fg faultguard.Latch
	// guardAll is set by WithFaultGuard: every call runs under the fault
	// guard, the per-item fast paths included (see the package doc).
	guardAll bool
	_        [layout.LineSize]byte

	// Producer side.
	pstate    uint8
	pheld     bool   // this handle holds the producer role (release it at Close)
	tail      uint64 // private copy of ctl.tail: only we write it
	headCache uint64 // last head we loaded; refreshed when we look full
	claimed   uint64 // Ring: slots of the last Claim, not yet published
	need      uint64 // free space the current wait needs
	perr      error  // corruption seen by roomReady
	roomReady func() bool
	_         [layout.LineSize]byte

	// Consumer side.
	cstate    uint8
	cheld     bool   // this handle holds the consumer role
	head      uint64 // private copy of ctl.head: only we write it
	tailCache uint64 // last tail we loaded; refreshed when we look empty
	peeked    uint64 // Ring: items of the last Peek, not yet advanced
	readEnd   uint64 // ByteRing: end of records read, not yet released
	cerr      error
	dataReady func() bool
	readyPos  uint64 // dataReady reports tail != readyPos
	_         [layout.LineSize]byte
}

func (c *core) init(seg *layout.Segment, ctl *control, capacity uint64, cfg options.Config) {
	c.seg, c.ctl, c.cap, c.mask = seg, ctl, capacity, capacity-1
	c.name = seg.Raw().Spec().String()
	c.fg.Init("shmring", c.name, seg.Raw().Bytes())
	c.policy = cfg.PolicyOr(defaultPolicy)
	if s, ok := cfg.Own.(*settings); ok {
		c.guardAll = s.faultGuard
	}
	c.roomReady = func() bool {
		ok, err := c.refreshHead(c.need)
		if err != nil {
			c.perr = err
			return true
		}
		return ok
	}
	c.dataReady = func() bool {
		ok, err := c.refreshTail(c.readyPos)
		if err != nil {
			c.cerr = err
			return true
		}
		if ok || c.ctl.writesClosed.Load() == 0 {
			return ok
		}
		// Closed: the producer published everything before it set the
		// flag, so one more look at the tail is final.
		if ok, err = c.refreshTail(c.readyPos); err != nil || ok {
			c.cerr = err
			return true
		}
		c.cerr = c.drained()
		return true
	}
}

// drained is the consumer's error once writes are closed and everything
// was read.
func (c *core) drained() error {
	return layout.WrapOp("shmring", "consume", c.name, fmt.Errorf("%w: the producer closed writes and every item was read", ErrClosed))
}

// corrupt builds the error for cursors that fail validation.
func (c *core) corrupt(head, tail uint64) error {
	return layout.WrapOp("shmring", "check cursors", c.name, fmt.Errorf("%w: head %d, tail %d, capacity %d (tail-head must be in [0, capacity])", ErrCorrupt, head, tail, c.cap))
}

// refreshHead loads the consumer's head and reports whether need units are
// free. The loaded value is validated before it is cached: head may not
// pass our tail nor trail it by more than the capacity.
func (c *core) refreshHead(need uint64) (bool, error) {
	h := c.ctl.head.Load()
	if c.tail-h > c.cap {
		return false, c.corrupt(h, c.tail)
	}
	c.headCache = h
	return c.cap-(c.tail-h) >= need, nil
}

// refreshTail loads the producer's tail and reports whether it has moved
// past pos (our head, or the byte ring's read position).
func (c *core) refreshTail(pos uint64) (bool, error) {
	t := c.ctl.tail.Load()
	// Beyond the capacity, or behind what we have already read: a tail
	// never moves backwards.
	if t-c.head > c.cap || t-c.head < pos-c.head {
		return false, c.corrupt(c.head, t)
	}
	c.tailCache = t
	return t != pos, nil
}

// refreshHeadGuarded is refreshHead for the producer's fast-path calls
// (TryPush, Claim, Reserve), which are not guarded as a whole: the reload
// of the other cursor is their slow path, and is.
func (c *core) refreshHeadGuarded(need uint64) (ok bool, err error) {
	defer c.guardP(&err, "refresh head", faultguard.Enable())
	return c.refreshHead(need)
}

// refreshTailGuarded is refreshHeadGuarded for the consumer.
func (c *core) refreshTailGuarded(pos uint64) (ok bool, err error) {
	defer c.guardC(&err, "refresh tail", faultguard.Enable())
	return c.refreshTail(pos)
}

// waitRoom blocks until need units are free, ctx is done, or the cursors
// are found corrupt. The producer role must be held.
func (c *core) waitRoom(ctx context.Context, need uint64) (err error) {
	defer c.guardP(&err, "wait for room", faultguard.Enable())
	c.need, c.perr = need, nil
	// Stored before the notifier sets its parked bit, so a consumer that
	// sees the bit sees the target too.
	if target := c.tail + need - c.cap; c.ctl.notFullAt.Load() != target {
		c.ctl.notFullAt.Store(target)
	}
	err = c.ctl.notFull.WaitPoll(ctx, c.policy, c.roomReady, parkRecheck, recheck)
	if c.perr != nil {
		err, c.perr = c.perr, nil
	}
	return err
}

// waitData blocks until the tail moves past pos, ctx is done, or the
// cursors are found corrupt. The consumer role must be held.
func (c *core) waitData(ctx context.Context, pos uint64) (err error) {
	defer c.guardC(&err, "wait for data", faultguard.Enable())
	c.readyPos, c.cerr = pos, nil
	err = c.ctl.notEmpty.WaitPoll(ctx, c.policy, c.dataReady, parkRecheck, recheck)
	if c.cerr != nil {
		err, c.cerr = c.cerr, nil
	}
	return err
}

// publishTail makes everything up to t visible to the consumer and wakes it
// if it is parked. Must be called only by the producer.
//
// The wake protocol is the Notifier's (Dekker's): we store the tail, then
// load the notifier word; the consumer sets the parked bit, then re-checks
// the tail (all sequentially consistent). Either it sees our tail and does
// not sleep, or we see the bit and wake it.
func (c *core) publishTail(t uint64) {
	c.tail = t
	c.ctl.tail.Store(t)
	c.ctl.notEmpty.Notify() // one load, unless a consumer is parked
}

// releaseHead frees everything before h for the producer and wakes it if
// it is parked waiting for this much room (see publishTail): notFullAt is
// the head it needs, so releases short of it skip the wake. Must be called
// only by the consumer.
func (c *core) releaseHead(h uint64) {
	old := c.head
	c.head = h
	c.ctl.head.Store(h)
	if c.ctl.notFull.Waiting() && c.ctl.notFullAt.Load()-old-1 < h-old {
		c.ctl.notFull.Notify()
	}
}

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
	defer c.guardP(&err, "claim role", faultguard.Enable())
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
	defer c.guardC(&err, "claim role", faultguard.Enable())
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
	defer c.guardAny(nil, "close", faultguard.Enable())
	c.release(role)
}

// ---- memory faults ----

// ErrTruncated is the message of the error a ring call returns when the
// segment was truncated under it (a peer with write access called
// ftruncate on a posix: or file: segment, and the pages the call touched
// are gone). It wraps ErrCorrupt; the handle is then good only for Close.
// It is the same value as shmqueue.ErrTruncated and shmbus.ErrTruncated.
var ErrTruncated = faultguard.ErrTruncated

// faultErr returns the error of a fault this handle caught, or nil.
func (c *core) faultErr() error { return c.fg.Err() }

// guardP is deferred by every producer method, with the result of
// faultguard.Enable: a memory fault inside the segment's mapping becomes
// the handle's fault error (in *errp, if not nil) and leaves the producer
// side faulted; any other panic goes on.
func (c *core) guardP(errp *error, op string, prev bool) {
	if c.fg.Catch(recover(), errp, op) {
		c.pstate = roleFaulted
	}
	faultguard.Restore(prev)
}

// guardC is guardP for consumer methods.
func (c *core) guardC(errp *error, op string, prev bool) {
	if c.fg.Catch(recover(), errp, op) {
		c.cstate = roleFaulted
	}
	faultguard.Restore(prev)
}

// guardAny is guardP for calls any goroutine may make (Len, Stats, a
// WaitSet's readiness check): it records the fault without touching either
// side's state, which belongs to the role goroutines. They see the fault
// at their next slow path, or fault themselves. It is the Latch's Guard.
func (c *core) guardAny(errp *error, op string, prev bool) {
	c.fg.Catch(recover(), errp, op)
	faultguard.Restore(prev)
}

// ---- stats ----

// RingStats is a snapshot of a ring's shared state, for tools and
// monitoring. Head and Tail are loaded at slightly different moments; Len
// is clamped to [0, Cap].
type RingStats struct {
	Kind            layout.Kind
	Cap             uint64 // slots (Ring) or bytes (ByteRing)
	Len             uint64 // items or bytes published and not yet released
	Head, Tail      uint64 // lifetime counters
	Producer        RoleHolder
	Consumer        RoleHolder
	ProducerWaiting bool // the producer may be parked on "not full"
	ConsumerWaiting bool // a consumer (or WaitSet) may be parked on "not empty"
	WritesClosed    bool // CloseWrites was called: no more items will come
}

// stats reads the shared state. The error is ErrClosed for a closed handle,
// or an ErrCorrupt naming the cursors when head and tail are inconsistent
// (the rest of the snapshot is filled in all the same).
func (c *core) stats(kind layout.Kind) (s RingStats, err error) {
	s = RingStats{Kind: kind, Cap: c.cap}
	if c.closed.Load() {
		return s, layout.WrapOp("shmring", "stats", c.name, ErrClosed)
	}
	if err := c.faultErr(); err != nil {
		return s, err
	}
	defer c.guardAny(&err, "stats", faultguard.Enable())
	var corrupt error
	s.Head = c.ctl.head.Load()
	s.Tail = c.ctl.tail.Load()
	if d := s.Tail - s.Head; d <= c.cap {
		s.Len = d
	} else if int64(d) < 0 {
		corrupt = c.corrupt(s.Head, s.Tail)
	} else {
		// Possibly the tail moved on between our two loads; re-read.
		s.Head = c.ctl.head.Load()
		if d := s.Tail - s.Head; d <= c.cap {
			s.Len = d
		} else {
			s.Len = c.cap
			corrupt = c.corrupt(s.Head, s.Tail)
		}
	}
	s.Producer = owner.Decode(c.ctl.producer.Load())
	s.Consumer = owner.Decode(c.ctl.consumer.Load())
	s.ProducerWaiting = c.ctl.notFull.Waiting()
	s.ConsumerWaiting = c.ctl.notEmpty.Waiting()
	s.WritesClosed = c.ctl.writesClosed.Load() != 0
	return s, corrupt
}

func (c *core) length() (n uint64) {
	if c.closed.Load() || c.fg.Faulted() {
		return 0
	}
	defer c.guardAny(nil, "len", faultguard.Enable())
	h := c.ctl.head.Load()
	t := c.ctl.tail.Load()
	if d := t - h; d <= c.cap {
		return d
	}
	if int64(t-h) < 0 {
		return 0
	}
	return c.cap
}

// Inspect reports the state of a ring segment (KindRing or KindByteRing)
// opened by a tool with layout.Open(spec, layout.Expect{Kind: layout.KindAny}),
// without knowing its element type. It claims no role.
func Inspect(s *layout.Segment) (RingStats, error) {
	h := s.Header()
	if h.Kind != layout.KindRing && h.Kind != layout.KindByteRing {
		return RingStats{}, layout.WrapOp("shmring", "inspect", s.Raw().Spec().String(), fmt.Errorf("%w: segment holds a %s, not a ring", ErrTypeMismatch, h.Kind))
	}
	ctl, err := checkControl(s)
	if err != nil {
		return RingStats{}, err
	}
	capacity, err := checkCapacity(s.Raw().Spec().String(), h.Capacity, maxCapacity)
	if err != nil {
		return RingStats{}, err
	}
	c := core{ctl: ctl, cap: capacity, mask: capacity - 1, name: s.Raw().Spec().String()}
	c.fg.Init("shmring", c.name, s.Raw().Bytes())
	return c.stats(h.Kind)
}

// maxCapacity bounds a ring's slot or byte count (and keeps every cursor
// difference far from wrapping).
const maxCapacity = 1 << 40

func checkCapacity(name string, n, limit uint64) (uint64, error) {
	if n == 0 || n&(n-1) != 0 || n > limit {
		return 0, layout.WrapOp("shmring", "check capacity", name, fmt.Errorf("%w: %d (must be a power of two in [1, %d])", ErrCorrupt, n, limit))
	}
	return n, nil
}

func checkControl(s *layout.Segment) (*control, error) {
	if s.NumRegions() < 1 {
		return nil, layout.WrapOp("shmring", "check control block", s.Raw().Spec().String(), fmt.Errorf("%w: no control region", ErrCorrupt))
	}
	ctl, err := layout.View[control](s, 0)
	if err != nil {
		return nil, layout.WrapOp("shmring", "check control block", s.Raw().Spec().String(), fmt.Errorf("control block: %w", err))
	}
	return ctl, nil
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
	fg.Init("shmring", s.Raw().Spec().String(), s.Raw().Bytes())
	defer fg.Guard(&err, "release dead roles", faultguard.Enable())
	return owner.ReleaseDead(&ctl.producer, &ctl.consumer), nil
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
		defer c.guardAny(nil, "wait", faultguard.Enable())
		return c.ctl.tail.Load() != c.ctl.head.Load() || c.ctl.writesClosed.Load() != 0
	}
}

// closeWrites ends the stream: see Ring.CloseWrites.
func (c *core) closeWrites() error {
	if c.pstate != roleHeld {
		if c.pstate == roleNone && c.ctl.writesClosed.Load() != 0 {
			return nil // already closed, by us or a predecessor
		}
		if err := c.claimProducer(); err != nil {
			return err
		}
	}
	c.ctl.writesClosed.Store(1)
	c.ctl.notEmpty.Notify()
	c.release(roleProducer)
	c.pstate = roleNone
	return nil
}
