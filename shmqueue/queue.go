package shmqueue

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	stdsync "sync"
	"sync/atomic"

	"github.com/shmkit/shmkit/internal/faultguard"
	"github.com/shmkit/shmkit/internal/options"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	"github.com/shmkit/shmkit/sync"
)

// Queue is a handle to a shared bounded MPMC queue of T. See the package
// documentation for the concurrency rules and crash semantics.
type Queue[T any] struct {
	seg     *layout.Segment
	spec    string
	backend Backend
	b       backend[T]

	closeMu stdsync.Mutex
	closed  atomic.Bool

	// fg holds the segment's address range and the error of the first
	// memory fault (a truncated segment) any call of this handle caught:
	// every later call but Close returns it. See "Truncated segments" in
	// the package documentation.
	fg faultguard.Latch
}

// Queue is a sync.Waitable.
var _ sync.Waitable = (*Queue[uint64])(nil)

// wrap gives err the one error shape: "shmqueue: op spec: cause".
func (q *Queue[T]) wrap(op string, err error) error {
	return layout.WrapOp("shmqueue", op, q.spec, err)
}

// Create makes a queue of the given capacity at spec. Capacity is rounded
// up to a power of two (at least 2); the futex backend accepts up to 2^32,
// the SysV backend up to 16384. It fails if spec exists.
func Create[T any](spec string, capacity int, opts ...Option) (*Queue[T], error) {
	cfg, s, err := buildConfig("create", spec, opts)
	if err != nil {
		return nil, err
	}
	wrap := func(err error) error { return layout.WrapOp("shmqueue", "create", spec, err) }
	t := reflect.TypeFor[T]()
	if _, err := layout.Describe(t); err != nil {
		return nil, wrap(err)
	}
	if capacity <= 0 || capacity > maxCapacity {
		return nil, wrap(fmt.Errorf("%w: %d out of range [1,%d]", ErrCapacity, capacity, maxCapacity))
	}
	cp := uint64(2)
	for cp < uint64(capacity) {
		cp <<= 1
	}
	d := layout.Desc{Kind: layout.KindQueue, Types: []reflect.Type{t}, Capacity: cp}
	d.Params[paramBackend] = uint64(s.backend)
	slotRegion := layout.Region{Size: cp * slotSize[T](), Align: layout.LineSize}
	var sem *sync.SemSet
	var init func(*layout.Segment) error
	switch s.backend {
	case BackendFutex:
		if s.maxHandles <= 0 || s.maxHandles > maxHandles {
			return nil, wrap(fmt.Errorf("%w: max handles %d out of range [1,%d]", ErrCapacity, s.maxHandles, maxHandles))
		}
		d.Regions = []layout.Region{
			{Size: futexControlSize, Align: layout.LineSize},
			slotRegion,
			{Size: uint64(s.maxHandles) * memberSize, Align: layout.LineSize},
		}
		d.Params[paramMembers] = uint64(s.maxHandles)
		d.Params[paramLanes] = lanesPerMember
		init = func(seg *layout.Segment) error { return initFutex[T](seg, cp) }
	case BackendSysV:
		if cp > maxSysVCapacity {
			return nil, wrap(fmt.Errorf("%w: SysV backend capacity %d exceeds %d", ErrCapacity, cp, maxSysVCapacity))
		}
		d.Regions = []layout.Region{{Size: sysvControlSize, Align: layout.LineSize}, slotRegion}
		key := s.semKey
		if s.ftokPath != "" {
			if key, err = sync.Ftok(s.ftokPath, s.ftokID); err != nil {
				return nil, wrap(err)
			}
		}
		mode := cfg.Mode
		if mode == 0 {
			mode = 0o600
		}
		if sem, err = sync.CreateSemSet(key, numSems, mode); err != nil {
			return nil, wrap(err)
		}
		d.Params[paramSemKey] = uint64(uint32(sem.Key()))
		d.Params[paramSemID] = uint64(sem.ID())
		init = func(*layout.Segment) error { return initSysV(sem, cp) }
	default:
		return nil, wrap(fmt.Errorf("unknown backend %d", s.backend))
	}
	seg, err := layout.Create(spec, d, init, cfg.Layout...)
	if err != nil {
		if sem != nil {
			_ = sem.Remove()
		}
		return nil, wrap(err)
	}
	q, err := attach[T](seg, spec, cfg, sem)
	if err != nil {
		_ = seg.Close()
		_ = segment.Remove(spec)
		if sem != nil {
			_ = sem.Remove()
		}
		return nil, wrap(err)
	}
	return q, nil
}

// Open attaches the queue at spec, which must hold a queue of T. It uses
// the backend the creator chose.
func Open[T any](spec string, opts ...Option) (*Queue[T], error) {
	cfg, _, err := buildConfig("open", spec, opts)
	if err != nil {
		return nil, err
	}
	wrap := func(err error) error { return layout.WrapOp("shmqueue", "open", spec, err) }
	t := reflect.TypeFor[T]()
	if _, err := layout.Describe(t); err != nil {
		return nil, wrap(err)
	}
	seg, err := layout.Open(spec, layout.Expect{Kind: layout.KindQueue, Types: []reflect.Type{t}}, cfg.Layout...)
	if err != nil {
		return nil, wrap(err)
	}
	q, err := attach[T](seg, spec, cfg, nil)
	if err != nil {
		_ = seg.Close()
		return nil, wrap(err)
	}
	return q, nil
}

// attach validates the segment's queue layout and makes the handle; sem
// is the set Create just made (nil: open the one the header names).
//
// The member record claim (futex), the first touch of the shared state,
// runs under the fault guard: a segment truncated under it is
// ErrTruncated, not SIGBUS.
func attach[T any](seg *layout.Segment, spec string, cfg options.Config, sem *sync.SemSet) (*Queue[T], error) {
	h := seg.Header()
	cp, err := checkCapacity(h)
	if err != nil {
		return nil, err
	}
	policy := cfg.PolicyOr(DefaultWaitPolicy)
	q := &Queue[T]{seg: seg, spec: spec, backend: Backend(h.Params[paramBackend])}
	s, _ := cfg.Own.(*settings)
	q.fg.Init("shmqueue", spec, seg.Raw(), s != nil && s.faultGuard)
	if err := q.attachBackend(seg, cp, policy, sem); err != nil {
		return nil, err
	}
	return q, nil
}

// attachBackend is attach's guarded part: it makes and attaches q.b.
func (q *Queue[T]) attachBackend(seg *layout.Segment, cp uint64, policy sync.WaitPolicy, sem *sync.SemSet) (err error) {
	defer q.fg.Guard(&err, "attach", q.fg.Enable())
	h := seg.Header()
	if uint64(len(seg.Region(1))) != cp*slotSize[T]() {
		return fmt.Errorf("%w: slot region of %d bytes for capacity %d", ErrCorrupt, len(seg.Region(1)), cp)
	}
	slots, err := layout.ViewSlice[slot[T]](seg, 1, int(cp))
	if err != nil {
		return err
	}
	switch q.backend {
	case BackendFutex:
		ctl, members, err := futexRegions(seg)
		if err != nil {
			return err
		}
		fq := &futexQueue[T]{ctl: ctl, slots: slots, mask: cp - 1, cap: cp, members: members, policy: policy, fg: &q.fg, light: lightWakes()}
		if err := fq.attach(); err != nil {
			return err
		}
		q.b = fq
	case BackendSysV:
		ctl, err := sysvRegions(seg)
		if err != nil {
			return err
		}
		if sem == nil {
			if sem, err = openSemSet(h.Params); err != nil {
				return err
			}
		}
		if sem.Len() != numSems {
			return fmt.Errorf("%w: semaphore set %d has %d semaphores, want %d", ErrCorrupt, sem.ID(), sem.Len(), numSems)
		}
		q.b = &sysvQueue[T]{ctl: ctl, slots: slots, cap: cp, mask: cp - 1, sem: sem, policy: policy, fg: &q.fg}
	}
	return nil
}

// lightWakes is sync.LightWakes; a test sets it to false to run the CAS
// path on a machine where membarrier works.
var lightWakes = sync.LightWakes

// checkCapacity validates the header's capacity and backend against what
// each backend allows.
func checkCapacity(h *layout.Header) (uint64, error) {
	cp := h.Capacity
	limit := uint64(maxCapacity)
	switch b := Backend(h.Params[paramBackend]); b {
	case BackendFutex:
	case BackendSysV:
		limit = maxSysVCapacity
	default:
		return 0, fmt.Errorf("%w: unknown backend %d", ErrCorrupt, h.Params[paramBackend])
	}
	if cp < 2 || cp > limit || cp&(cp-1) != 0 {
		return 0, fmt.Errorf("%w: capacity %d is not a power of two in [2,%d]", ErrCorrupt, cp, limit)
	}
	return cp, nil
}

// futexRegions validates and maps a futex queue's control block and member
// records.
func futexRegions(seg *layout.Segment) (*futexControl, []member, error) {
	h := seg.Header()
	n := h.Params[paramMembers]
	if n == 0 || n > maxHandles || h.Params[paramLanes] != lanesPerMember {
		return nil, nil, fmt.Errorf("%w: %d member records of %d lanes", ErrCorrupt, n, h.Params[paramLanes])
	}
	if seg.NumRegions() != 3 || uint64(len(seg.Region(0))) != futexControlSize || uint64(len(seg.Region(2))) != n*memberSize {
		return nil, nil, fmt.Errorf("%w: region sizes do not match a futex queue with %d members", ErrCorrupt, n)
	}
	ctl, err := layout.View[futexControl](seg, 0)
	if err != nil {
		return nil, nil, err
	}
	members, err := layout.ViewSlice[member](seg, 2, int(n))
	if err != nil {
		return nil, nil, err
	}
	return ctl, members, nil
}

// sysvRegions validates and maps a SysV queue's control block.
func sysvRegions(seg *layout.Segment) (*sysvControl, error) {
	if seg.NumRegions() != 2 || uint64(len(seg.Region(0))) != sysvControlSize {
		return nil, fmt.Errorf("%w: region sizes do not match a SysV queue", ErrCorrupt)
	}
	return layout.View[sysvControl](seg, 0)
}

// openSemSet opens the semaphore set the header names. A set that is gone
// (or whose key now names another set: the recorded one was removed and
// the key reused) is ErrSemRemoved.
func openSemSet(p [layout.MaxParams]uint64) (*sync.SemSet, error) {
	if p[paramSemID] > 1<<31 {
		return nil, fmt.Errorf("%w: semaphore set id %d", ErrCorrupt, p[paramSemID])
	}
	key, id := int32(uint32(p[paramSemKey])), int(p[paramSemID])
	if key != 0 {
		s, err := sync.OpenSemSet(key)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, sync.ErrRemoved) {
			return nil, semRemoved(key, id, err)
		}
		if err != nil {
			return nil, err
		}
		if s.ID() != id {
			return nil, semRemoved(key, id, fmt.Errorf("key %#x now names another set, id %d", uint32(key), s.ID()))
		}
		return s, nil
	}
	s, err := sync.OpenSemSetID(id)
	if errors.Is(err, sync.ErrRemoved) {
		return nil, semRemoved(key, id, err)
	}
	return s, err
}

// unusable reports whether check would fail: the handle is nil or closed,
// or a memory fault was caught.
func (q *Queue[T]) unusable() bool {
	return q == nil || q.closed.Load() || q.fg.Faulted()
}

// check reports use after Close, and after a memory fault (the handle's
// first fault error).
func (q *Queue[T]) check(op string) error {
	if q == nil || q.closed.Load() {
		spec := ""
		if q != nil {
			spec = q.spec
		}
		return layout.WrapOp("shmqueue", op, spec, ErrClosed)
	}
	return q.fg.Err()
}

// Push appends v, blocking while the queue is full, until ctx is done
// (ctx.Err()) or the queue is closed for writes (ErrClosed). The context
// only bounds waiting: a Push that finds room succeeds even if ctx is done.
func (q *Queue[T]) Push(ctx context.Context, v T) error {
	return q.pushOne(ctx, v, true)
}

// TryPush appends v if there is room now; otherwise it returns ErrFull
// (or ErrClosed after CloseWrites). It never waits for room, but it may
// wait out a live consumer that is in the middle of popping the item whose
// slot v needs (for at most TryStallLimit, then ErrPeerStalled), because
// that pop already made room: see "Try operations" in the package
// documentation. TryPush and TryPop are linearizable.
func (q *Queue[T]) TryPush(v T) error {
	return q.pushOne(context.Background(), v, false)
}

// pushOne is Push (block) and TryPush. Small enough to inline: the checks
// and the fault guard's defer live in pushChecked, which a usable handle
// without WithFaultGuard never calls (they cost the per-item path a third
// of its time).
func (q *Queue[T]) pushOne(ctx context.Context, v T, block bool) error {
	if q.unusable() || q.fg.GuardsEachCall() {
		return q.pushChecked(ctx, v, block)
	}
	return q.wrap("push", q.b.pushOne(ctx, v, block))
}

func (q *Queue[T]) pushChecked(ctx context.Context, v T, block bool) (err error) {
	if err := q.check("push"); err != nil {
		return err
	}
	if q.fg.GuardsEachCall() {
		defer q.fg.Guard(&err, "push", q.fg.Enable())
	}
	return q.wrap("push", q.b.pushOne(ctx, v, block))
}

// PushBatch appends all of vs in order, blocking as needed. Items are
// claimed in runs of contiguous positions (futex: up to 64; SysV: as many
// as fit), so another producer's items may be interleaved between runs. It
// returns how many items were pushed: len(vs) with a nil error, or fewer
// with ctx.Err() or ErrClosed. A producer killed inside PushBatch has
// delivered a prefix of its current run (SysV: all of it or none), and the
// rest of the run is skipped.
func (q *Queue[T]) PushBatch(ctx context.Context, vs []T) (n int, err error) {
	if err := q.check("push"); err != nil {
		return 0, err
	}
	defer q.fg.Guard(&err, "push", q.fg.Enable())
	n, err = q.b.push(ctx, vs, true)
	return n, q.wrap("push", err)
}

// Pop removes and returns the oldest item, blocking while the queue is
// empty. Once the queue is closed for writes and drained it returns
// ErrClosed; if ctx ends first, ctx.Err().
func (q *Queue[T]) Pop(ctx context.Context) (T, error) {
	return q.popOne(ctx, true)
}

// TryPop removes and returns the oldest item if there is one now;
// otherwise ErrEmpty, or ErrClosed once closed and drained. It never waits
// for items, but it may wait out a live producer that is in the middle of
// pushing the oldest item (for at most TryStallLimit, then
// ErrPeerStalled), because that item is already in the queue: see "Try
// operations" in the package documentation.
func (q *Queue[T]) TryPop() (T, error) {
	return q.popOne(context.Background(), false)
}

// popOne is Pop (block) and TryPop; see pushOne.
func (q *Queue[T]) popOne(ctx context.Context, block bool) (T, error) {
	if q.unusable() || q.fg.GuardsEachCall() {
		return q.popChecked(ctx, block)
	}
	v, err := q.b.popOne(ctx, block)
	return v, q.wrap("pop", err)
}

func (q *Queue[T]) popChecked(ctx context.Context, block bool) (v T, err error) {
	if err := q.check("pop"); err != nil {
		return v, err
	}
	if q.fg.GuardsEachCall() {
		defer q.fg.Guard(&err, "pop", q.fg.Enable())
	}
	v, err = q.b.popOne(ctx, block)
	return v, q.wrap("pop", err)
}

// PopBatch blocks until at least one item is available, then removes up to
// len(buf) items into buf and returns how many (at least 1 with a nil
// error). It returns 0 and ErrClosed once closed and drained, or ctx.Err().
// A consumer killed inside PopBatch loses the items it had taken out: the
// futex backend takes at most 64 per claim, the SysV backend everything it
// returns at once.
func (q *Queue[T]) PopBatch(ctx context.Context, buf []T) (n int, err error) {
	if err := q.check("pop"); err != nil {
		return 0, err
	}
	if len(buf) == 0 {
		return 0, nil
	}
	defer q.fg.Guard(&err, "pop", q.fg.Enable())
	n, err = q.b.pop(ctx, buf, true)
	return n, q.wrap("pop", err)
}

// TryPopBatch removes up to len(buf) items that are available now. It
// returns 0 and ErrEmpty if none is, or ErrClosed once closed and drained.
// It waits out a peer in flight as TryPop does.
func (q *Queue[T]) TryPopBatch(buf []T) (n int, err error) {
	if err := q.check("pop"); err != nil {
		return 0, err
	}
	if len(buf) == 0 {
		return 0, nil
	}
	defer q.fg.Guard(&err, "pop", q.fg.Enable())
	n, err = q.b.pop(context.Background(), buf, false)
	return n, q.wrap("pop", err)
}

// CloseWrites marks the queue closed for writes, for every process: later
// pushes fail with ErrClosed, parked producers wake with ErrClosed, and
// consumers drain what is left and then get ErrClosed. Pushes that had
// already claimed their positions complete and are delivered. Closing twice
// is not an error.
func (q *Queue[T]) CloseWrites() (err error) {
	if err := q.check("close writes"); err != nil {
		return err
	}
	defer q.fg.Guard(&err, "close writes", q.fg.Enable())
	return q.wrap("close writes", q.b.closeWrites())
}

// Len returns the number of items in the queue (a snapshot; it includes
// items being pushed or popped right now, and holes not yet skipped). It
// is 0 after Close or a memory fault.
func (q *Queue[T]) Len() (n int) {
	if q.check("len") != nil {
		return 0
	}
	defer q.fg.Guard(nil, "len", q.fg.Enable())
	return q.b.length()
}

// Cap returns the capacity.
func (q *Queue[T]) Cap() int {
	if q == nil || q.closed.Load() {
		return 0
	}
	return int(q.seg.Header().Capacity) // the header's private copy
}

// Backend returns the queue's synchronization backend.
func (q *Queue[T]) Backend() Backend { return q.backend }

// Segment returns the underlying segment (for tools).
func (q *Queue[T]) Segment() *layout.Segment { return q.seg }

// WaitSource makes a Queue a sync.Waitable: a sync.WaitSet over queues
// (and rings, and bus subscribers) wakes when one of them has an item to
// pop. The check reports true when an item can be popped, or the queue is
// closed for writes (TryPop then drains it, then says ErrClosed), or this
// handle is closed. It may also report true while a producer is writing
// the item at the head (futex backend); TryPop then waits for that item
// (or skips it if its producer died). Both backends signal the returned notifier when
// an item arrives. The check runs under the fault guard: a memory fault
// makes it report true, and the next call of the handle returns the error.
func (q *Queue[T]) WaitSource() (*sync.Notifier, func() bool) {
	if q.check("wait source") != nil {
		return nil, nil
	}
	n, ready := q.b.waitSource()
	return n, func() (ok bool) {
		if q.closed.Load() || q.fg.Faulted() {
			return true
		}
		ok = true // what a fault leaves
		defer q.fg.Guard(nil, "wait", q.fg.Enable())
		return ready()
	}
}

// Close detaches the handle: it releases the handle's member record and
// unmaps the segment. The queue itself stays (see Remove) and is not
// closed for writes. Close must not run concurrently with other methods;
// afterwards they return ErrClosed. Closing twice returns nil. After a
// memory fault Close still works: a member record lost with the truncated
// pages is simply forgotten.
func (q *Queue[T]) Close() error {
	if q == nil {
		return nil
	}
	q.closeMu.Lock()
	defer q.closeMu.Unlock()
	if q.closed.Swap(true) {
		return nil
	}
	q.detach()
	return q.wrap("close", q.seg.Close())
}

func (q *Queue[T]) detach() {
	defer q.fg.Guard(nil, "close", q.fg.Enable())
	q.b.detach()
}

// blocked is the number of this handle's goroutines inside a blocking
// wait for items (consumers) or room: for tests.
func (q *Queue[T]) blocked(consumers bool) int { return q.b.blocked(consumers) }
