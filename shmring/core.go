package shmring

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"runtime"
	stdsync "sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/shmkit/shmkit/internal/proc"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	shmsync "github.com/shmkit/shmkit/sync"
)

// Re-exported sentinel errors (defined once in package layout).
var (
	ErrClosed          = layout.ErrClosed
	ErrCorrupt         = layout.ErrCorrupt
	ErrFull            = layout.ErrFull
	ErrEmpty           = layout.ErrEmpty
	ErrRoleTaken       = layout.ErrRoleTaken
	ErrTypeMismatch    = layout.ErrTypeMismatch
	ErrUnsupportedType = layout.ErrUnsupportedType
)

// ErrCapacity reports a capacity that is zero, negative, not a power of two,
// or too large.
var ErrCapacity = errors.New("shmring: invalid capacity")

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
	// notEmpty is where the consumer parks; the producer notifies it.
	// notEmptyAt is the tail the consumer saw when it went to wait: it
	// sleeps only while tail == notEmptyAt, so only the publish that moves
	// the tail past it needs to wake it, and later ones skip the futex call
	// even while the woken consumer has not run yet (or if a consumer died
	// parked and left the waiter count up).
	notEmpty   shmsync.Notifier
	notEmptyAt atomic.Uint64
	_          [layout.LineSize - 16]byte
	// notFull is where the producer parks; the consumer notifies it.
	// notFullAt is the head the producer needs before it has room: only
	// the release that moves the head to or past it wakes the producer.
	notFull   shmsync.Notifier
	notFullAt atomic.Uint64
	_         [layout.LineSize - 16]byte
	// producer and consumer are the role words: 0 when free, else
	// pid<<32 | low 32 bits of the holder's start time (see roleWord).
	producer atomic.Uint64
	consumer atomic.Uint64
	_        [layout.LineSize - 16]byte
}

// controlSize is the size of the control region.
var controlSize = uint64(reflect.TypeFor[control]().Size())

// config collects the options of Create and Open.
type config struct {
	layout []layout.Option
	policy shmsync.WaitPolicy
	spin   int
}

// Option configures Create and Open.
type Option func(*config)

// WithLayout passes options to layout.Create / layout.Open.
func WithLayout(opts ...layout.Option) Option {
	return func(c *config) { c.layout = append(c.layout, opts...) }
}

// WithMode sets the permission bits of a created segment (default 0600).
func WithMode(m os.FileMode) Option {
	return WithLayout(layout.WithSegment(segment.WithMode(m)))
}

// WithPopulate pre-faults the mapping so first touches do not fault on the
// hot path.
func WithPopulate() Option {
	return WithLayout(layout.WithSegment(segment.WithPopulate()))
}

// WithWaitPolicy sets how blocking calls wait (default SpinThenPark):
// SpinOnly never parks (lowest latency, burns a CPU while waiting),
// ParkOnly parks after one check. The policy is per handle, not per ring:
// each side chooses its own.
func WithWaitPolicy(p shmsync.WaitPolicy) Option {
	return func(c *config) { c.policy = p }
}

// WithSpin sets how many times a blocking call re-checks the ring in a
// tight loop (no yield, no syscall) before handing over to the notifier's
// yielding spin and park phases. Default 256; 0 disables the tight spin.
func WithSpin(n int) Option {
	return func(c *config) { c.spin = max(n, 0) }
}

func buildConfig(opts []Option) config {
	c := config{policy: shmsync.SpinThenPark, spin: defaultSpin}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

const defaultSpin = 256

// Role states of a handle. roleHeld is the only state the fast paths
// accept; every other value sends them to the slow path, which claims the
// role or reports ErrClosed.
const (
	roleNone uint8 = iota
	roleHeld
	roleClosed
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
	key    roleKey
	policy shmsync.WaitPolicy
	spin   int
	// closed is set by Close; Len and Stats, which any goroutine may call,
	// check it instead of the role states (owned by the role goroutines).
	closed atomic.Bool
	_      [layout.LineSize]byte

	// Producer side.
	pstate    uint8
	tail      uint64 // private copy of ctl.tail: only we write it
	headCache uint64 // last head we loaded; refreshed when we look full
	claimed   uint64 // Ring: slots of the last Claim, not yet published
	need      uint64 // free space the current wait needs
	perr      error  // corruption seen by roomReady
	roomReady func() bool
	_         [layout.LineSize]byte

	// Consumer side.
	cstate    uint8
	head      uint64 // private copy of ctl.head: only we write it
	tailCache uint64 // last tail we loaded; refreshed when we look empty
	peeked    uint64 // Ring: items of the last Peek, not yet advanced
	readEnd   uint64 // ByteRing: end of records read, not yet released
	cerr      error
	dataReady func() bool
	readyPos  uint64 // dataReady reports tail != readyPos
	_         [layout.LineSize]byte
}

func (c *core) init(seg *layout.Segment, ctl *control, capacity uint64, cfg config) {
	c.seg, c.ctl, c.cap, c.mask = seg, ctl, capacity, capacity-1
	c.name = seg.Raw().Spec().String()
	h := seg.Header()
	c.key = roleKey{creator: h.Creator.PID, start: h.Creator.Start, created: h.CreatedUnix}
	c.policy, c.spin = cfg.policy, cfg.spin
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
		return ok
	}
}

// corrupt builds the error for cursors that fail validation.
func (c *core) corrupt(head, tail uint64) error {
	return fmt.Errorf("shmring %s: %w: head %d, tail %d, capacity %d (tail-head must be in [0, capacity])", c.name, ErrCorrupt, head, tail, c.cap)
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

// waitRoom blocks until need units are free, ctx is done, or the cursors
// are found corrupt. The producer role must be held.
func (c *core) waitRoom(ctx context.Context, need uint64) error {
	c.need, c.perr = need, nil
	err := c.wait(ctx, &c.ctl.notFull, &c.ctl.notFullAt, c.tail+need-c.cap, c.roomReady)
	if c.perr != nil {
		err, c.perr = c.perr, nil
	}
	return err
}

// waitData blocks until the tail moves past pos, ctx is done, or the
// cursors are found corrupt. The consumer role must be held.
func (c *core) waitData(ctx context.Context, pos uint64) error {
	c.readyPos, c.cerr = pos, nil
	err := c.wait(ctx, &c.ctl.notEmpty, &c.ctl.notEmptyAt, pos, c.dataReady)
	if c.cerr != nil {
		err, c.cerr = c.cerr, nil
	}
	return err
}

// wait implements the wait policy around ready (which reports true on
// success or on corruption). Before it may park, it records target (the
// cursor value it waits for) in *at, for the other side's wake decision.
//
// SpinOnly re-checks in tight loops of spinRound checks, yielding the
// processor (runtime.Gosched, and every yieldRounds rounds sched_yield) and
// looking at ctx between rounds: a peer's store is seen within one
// cache-line transfer, and the notifier is never involved, so the peer's
// Notify stays a plain load and nothing is stored here. SpinThenPark does
// c.spin tight checks and then lets the notifier yield for a while and
// park. ParkOnly goes to the notifier at once, which parks after one
// check.
func (c *core) wait(ctx context.Context, n *shmsync.Notifier, at *atomic.Uint64, target uint64, ready func() bool) error {
	switch c.policy {
	case shmsync.SpinOnly:
		for round := 1; ; round++ {
			for range spinRound {
				if ready() {
					return nil
				}
			}
			// Let other goroutines run and, now and then, other processes
			// too: on a machine with more runnable threads than CPUs the
			// peer we are waiting for may need this very CPU.
			runtime.Gosched()
			if round%yieldRounds == 0 {
				_, _, _ = unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	case shmsync.ParkOnly:
	default:
		for range c.spin {
			if ready() {
				return nil
			}
		}
	}
	// Stored before the notifier registers us as a waiter, so a peer that
	// sees the registration sees the target too.
	if at.Load() != target {
		at.Store(target)
	}
	return n.Wait(ctx, c.policy, ready)
}

// spinRound is how many tight checks SpinOnly makes between
// runtime.Gosched calls, and yieldRounds how many rounds between
// sched_yield calls (about every 10-50 µs of fruitless spinning).
const (
	spinRound   = 256
	yieldRounds = 16
)

// publishTail makes everything up to t visible to the consumer and wakes it
// if it is parked waiting for exactly this. Must be called only by the
// producer.
//
// The wake protocol is Dekker's: we store the tail, then load the waiter
// count; the consumer stores its wait position, registers as a waiter,
// then re-checks the tail (all sequentially consistent). Either it sees our
// tail and does not sleep, or we see it registered, and then also its wait
// position, and wake it if this publish moves the tail past that position.
func (c *core) publishTail(t uint64) {
	old := c.tail
	c.tail = t
	c.ctl.tail.Store(t)
	if c.ctl.notEmpty.Waiters() != 0 && c.ctl.notEmptyAt.Load()-old < t-old {
		c.ctl.notEmpty.Notify()
	}
}

// releaseHead frees everything before h for the producer and wakes it if
// it is parked waiting for this much room (see publishTail). Must be
// called only by the consumer.
func (c *core) releaseHead(h uint64) {
	old := c.head
	c.head = h
	c.ctl.head.Store(h)
	if c.ctl.notFull.Waiters() != 0 && c.ctl.notFullAt.Load()-old-1 < h-old {
		c.ctl.notFull.Notify()
	}
}

// ---- roles ----

// roleKey identifies a ring segment within this process, so two handles of
// the same ring opened by one process cannot both act as producer (the role
// word names the process, not the handle).
type roleKey struct {
	creator int32
	start   uint64
	created int64
	role    uint8
}

const (
	roleProducer uint8 = 1
	roleConsumer uint8 = 2
)

var (
	localRolesMu stdsync.Mutex
	localRoles   = map[roleKey]bool{}
)

// roleWord packs a process identity into one CAS-able word:
// pid<<32 | low 32 bits of its start time. The start time (clock ticks
// since boot) disambiguates PID reuse; 32 bits of it wrap after about 497
// days at 100 Hz, so a reused PID would also need a start time exactly a
// multiple of 2^32 ticks away to be mistaken for the holder.
func roleWord(id proc.ID) uint64 {
	return uint64(uint32(id.PID))<<32 | uint64(uint32(id.Start))
}

// RoleHolder describes the holder of a ring role.
type RoleHolder struct {
	PID      int32  // 0 when the role is free
	StartLow uint32 // low 32 bits of the holder's start time (clock ticks)
	Alive    bool   // whether that process is still running
}

func (h RoleHolder) String() string {
	if h.PID == 0 {
		return "free"
	}
	state := "alive"
	if !h.Alive {
		state = "dead"
	}
	return fmt.Sprintf("pid %d (start %d, %s)", h.PID, h.StartLow, state)
}

func decodeRole(w uint64) RoleHolder {
	if w == 0 {
		return RoleHolder{}
	}
	h := RoleHolder{PID: int32(w >> 32), StartLow: uint32(w)}
	h.Alive = holderAlive(h.PID, h.StartLow)
	return h
}

// holderAlive reports whether the process recorded as (pid, low start) is
// still running. Zombies count as dead. A start of 0 means the holder could
// not read its own start time: the PID alone decides.
func holderAlive(pid int32, startLow uint32) bool {
	if pid <= 0 || !proc.Alive(proc.ID{PID: pid}) {
		return false
	}
	if startLow == 0 {
		return true
	}
	st, err := proc.StartTime(pid)
	return err == nil && uint32(st) == startLow
}

func roleName(role uint8) string {
	if role == roleProducer {
		return "producer"
	}
	return "consumer"
}

// claim takes the producer or consumer role for this handle. It succeeds
// when the role word is free, names a dead process, or names this process
// with no other open handle holding it.
func (c *core) claim(role uint8) error {
	word := &c.ctl.producer
	if role == roleConsumer {
		word = &c.ctl.consumer
	}
	self := proc.Self()
	me := roleWord(self)
	key := c.key
	key.role = role
	localRolesMu.Lock()
	defer localRolesMu.Unlock()
	for range 100 {
		cur := word.Load()
		switch {
		case cur == me:
			if localRoles[key] {
				return fmt.Errorf("shmring %s: %w: the %s role is held by another handle in this process (pid %d)", c.name, ErrRoleTaken, roleName(role), self.PID)
			}
			// Left by a handle of ours that was dropped without Close.
		case cur == 0:
			if !word.CompareAndSwap(0, me) {
				continue
			}
		default:
			h := decodeRole(cur)
			if h.Alive {
				return fmt.Errorf("shmring %s: %w: the %s role is held by live %s", c.name, ErrRoleTaken, roleName(role), h)
			}
			if !word.CompareAndSwap(cur, me) {
				continue
			}
		}
		localRoles[key] = true
		return nil
	}
	return fmt.Errorf("shmring %s: %w: the %s role word keeps changing", c.name, ErrRoleTaken, roleName(role))
}

// release gives up a role this handle holds.
func (c *core) release(role uint8) {
	word := &c.ctl.producer
	if role == roleConsumer {
		word = &c.ctl.consumer
	}
	key := c.key
	key.role = role
	localRolesMu.Lock()
	delete(localRoles, key)
	localRolesMu.Unlock()
	word.CompareAndSwap(roleWord(proc.Self()), 0)
}

// claimProducer is the producer's slow path: claim the role and load the
// cursors the previous producer (if any) left.
func (c *core) claimProducer() error {
	switch c.pstate {
	case roleHeld:
		return nil
	case roleClosed:
		return fmt.Errorf("shmring %s: %w", c.name, ErrClosed)
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
func (c *core) claimConsumer() error {
	switch c.cstate {
	case roleHeld:
		return nil
	case roleClosed:
		return fmt.Errorf("shmring %s: %w", c.name, ErrClosed)
	}
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
	if c.pstate == roleHeld {
		c.release(roleProducer)
	}
	if c.cstate == roleHeld {
		c.release(roleConsumer)
	}
	c.pstate, c.cstate = roleClosed, roleClosed
	c.closed.Store(true)
	c.roomReady, c.dataReady = nil, nil
	err := c.seg.Close()
	runtime.KeepAlive(c.seg)
	return err
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
	ProducerWaiters uint32 // parked on "not full"
	ConsumerWaiters uint32 // parked on "not empty"
	// Corrupt is non-nil when head and tail are inconsistent.
	Corrupt error
}

func (c *core) stats(kind layout.Kind) RingStats {
	s := RingStats{Kind: kind, Cap: c.cap}
	if c.closed.Load() {
		return s // the segment is unmapped: nothing to report
	}
	s.Head = c.ctl.head.Load()
	s.Tail = c.ctl.tail.Load()
	if d := s.Tail - s.Head; d <= c.cap {
		s.Len = d
	} else if int64(d) < 0 {
		s.Corrupt = c.corrupt(s.Head, s.Tail)
	} else {
		// Possibly the tail moved on between our two loads; re-read.
		s.Head = c.ctl.head.Load()
		if d := s.Tail - s.Head; d <= c.cap {
			s.Len = d
		} else {
			s.Len = c.cap
			s.Corrupt = c.corrupt(s.Head, s.Tail)
		}
	}
	s.Producer = decodeRole(c.ctl.producer.Load())
	s.Consumer = decodeRole(c.ctl.consumer.Load())
	s.ProducerWaiters = c.ctl.notFull.Waiters()
	s.ConsumerWaiters = c.ctl.notEmpty.Waiters()
	return s
}

func (c *core) length() uint64 {
	if c.closed.Load() {
		return 0
	}
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
		return RingStats{}, fmt.Errorf("shmring: %w: segment holds a %s, not a ring", ErrTypeMismatch, h.Kind)
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
	return c.stats(h.Kind), nil
}

// maxCapacity bounds a ring's slot or byte count (and keeps every cursor
// difference far from wrapping).
const maxCapacity = 1 << 40

func checkCapacity(name string, n, limit uint64) (uint64, error) {
	if n == 0 || n&(n-1) != 0 || n > limit {
		return 0, fmt.Errorf("shmring %s: %w: %d (must be a power of two in [1, %d])", name, ErrCorrupt, n, limit)
	}
	return n, nil
}

func checkControl(s *layout.Segment) (*control, error) {
	if s.NumRegions() < 1 {
		return nil, fmt.Errorf("shmring %s: %w: no control region", s.Raw().Spec(), ErrCorrupt)
	}
	ctl, err := layout.View[control](s, 0)
	if err != nil {
		return nil, fmt.Errorf("shmring %s: control block: %w", s.Raw().Spec(), err)
	}
	return ctl, nil
}

// ReleaseDeadRoles frees every role of the ring segment s whose holder has
// died, as the next producer or consumer would when claiming it, and
// returns the holders it released. It is for tools (shmctl doctor --fix):
// programs never need it, because claiming a role held by a dead process
// succeeds anyway. A role held by a live process is left alone; the cursors
// are untouched, so a new holder resumes where the dead one stopped.
func ReleaseDeadRoles(s *layout.Segment) ([]RoleHolder, error) {
	if k := s.Header().Kind; k != layout.KindRing && k != layout.KindByteRing {
		return nil, fmt.Errorf("shmring: %w: segment holds a %s, not a ring", ErrTypeMismatch, k)
	}
	ctl, err := checkControl(s)
	if err != nil {
		return nil, err
	}
	var released []RoleHolder
	for _, word := range []*atomic.Uint64{&ctl.producer, &ctl.consumer} {
		cur := word.Load()
		if cur == 0 {
			continue
		}
		if h := decodeRole(cur); !h.Alive && word.CompareAndSwap(cur, 0) {
			released = append(released, h)
		}
	}
	return released, nil
}
