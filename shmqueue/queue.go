// Package shmqueue provides Queue[T], a bounded multi-producer
// multi-consumer blocking queue in shared memory: any number of producer and
// consumer processes (and any number of goroutines in each) share one queue
// of fixed-size, pointer-free T.
//
// # Backends
//
// The synchronization backend is chosen at Create (WithBackend) and recorded
// in the segment header; Open uses whatever the creator chose.
//
//   - BackendFutex (default): a lock-free Vyukov-style ring. No system call
//     on the uncontended path; goroutines park on sync.Notifier futex words
//     only when the queue is empty or full, and a peer issues FUTEX_WAKE
//     only when someone is parked.
//   - BackendSysV: the classic producer/consumer design over a System V
//     semaphore set {slots, items, lock} plus a fourth "dirty" semaphore
//     that makes a holder's death detectable (see below). Two semop calls
//     per operation (or batch) when uncontended; it exists for interoperability with tools that watch
//     semaphores (ipcs) and as the textbook baseline.
//
// # The futex backend
//
// Layout. A control region holds the enqueue cursor, the dequeue cursor
// (each alone on a 128-byte line), two notifiers (items: consumers park
// there; slots: producers park there) and cold counters. The slot region is
// an array of capacity slots {seq uint64; val T}; capacity is a power of two
// and position p lives in slot p & (capacity-1). Cursors are free-running
// 56-bit positions (bit 63 of the enqueue cursor is the closed flag; at
// 100 M items/s the positions last 22 years).
//
// Slot sequence protocol (Dmitry Vyukov's bounded MPMC queue). Slot i starts
// with seq = i. For position p in slot p&mask:
//
//	seq == p             free: the producer of p may claim it
//	seq == p+1           published: the item of p may be consumed
//	seq == (p+1)|hole    p was claimed by a producer that died: skip it
//	seq == p+capacity    released: free for position p+capacity
//
// A producer reads the enqueue cursor p, checks seq == p (for a batch, the
// run of free slots after it, up to 64), claims [p, p+n) with one CAS on the
// enqueue cursor, writes the values and publishes each slot by storing
// seq = p+1. A consumer symmetrically checks seq == p+1, claims with a CAS
// on the dequeue cursor, copies the values out and releases each slot by
// storing seq = p+capacity. The claim CAS is the only contended write; the
// data and the seq store touch a line that, in steady state, only the
// claimant and the one peer that later takes over the slot touch.
//
// # Crash safety (futex backend)
//
// The cursor CAS and the seq store are two steps, and a process may be
// SIGKILLed between them:
//
//   - A producer killed after claiming p and before publishing leaves slot
//     p at seq == p forever. Consumers reach p, see it unpublished while the
//     enqueue cursor is past it, and would wait forever: a hole.
//   - A consumer killed after claiming p and before releasing leaves seq ==
//     p+1. Producers wrap around to p+capacity, see the slot still occupied
//     while the dequeue cursor is past p, and would wait forever.
//
// Both are detected and repaired with a participant table. Every attached
// handle owns a member record {owner; parked counts; lanes[13]} (one line)
// in the members region;
// owner packs pid and process start time (pid<<42 | start), so a reused pid
// is not mistaken for the owner. Each in-flight claim is announced in a
// lane: active, push or pop, first position and count, one atomic word. A
// goroutine takes a free lane of its handle's record and announces in the
// same step, by a CAS of the lane word from 0, so the fast path pays two
// extra atomic operations per claim (this CAS and the clearing store):
//
//	announce(lane, p, n)     BEFORE the claim CAS: there is no unannounced window
//	CAS cursor p -> p+n      the claim
//	write/read, store seqs   publish / release
//	lane = 0                 AFTER the last seq store (frees the lane too)
//
// A waiter that finds the slot of position p claimed but not finished for a
// while (about a millisecond, or at once for TryPush/TryPop) scans the
// lanes for an announcement covering p whose owner is alive (proc.Alive, by
// pid and start time). If there is none, it re-reads the slot with a CAS:
// a producer hole p -> (p+1)|hole (consumers then pass it over without
// delivering anything), a consumer's stuck slot p+1 -> p+capacity (the
// consumer's item is dropped: it had been taken out of the queue by the
// consumer that died). Why this is safe: the claimant stored its lane
// before its CAS, and clears it only after its seq store. The waiter saw the
// cursor past p (so after the CAS), then read the lanes (so after the
// announcement). If the claimant is alive, the waiter either sees its lane
// still covering p (and keeps waiting) or sees it cleared or reused, and
// then the seq store came before, so the repair CAS fails. Stale
// announcements (a claimant whose CAS failed, or a dead process whose
// member record was taken over) can only make a waiter wait longer, never
// repair a live claim. Go's sync/atomic operations are sequentially
// consistent, which is what this argument needs.
//
// What a SIGKILL can lose or redeliver, exactly:
//
//   - Nothing is ever delivered twice, and nothing that was not pushed is
//     ever delivered.
//   - An item whose Push (PushBatch) returned nil is delivered exactly once,
//     unless the consumer that popped it dies before its Pop returns (and
//     of course items popped by a consumer that dies before processing
//     them are gone: Pop removes).
//   - A producer killed inside Push: its item is either delivered (the seq
//     store happened) or skipped as a hole; never half-written. Inside
//     PushBatch, a prefix of the current claim (up to 64 items) is
//     delivered and the rest skipped; earlier claims were all delivered.
//   - A consumer killed inside Pop (PopBatch): the items of its claim (at
//     most one for Pop, at most 64 for one claim of PopBatch) are lost.
//   - A process killed while parked stays counted as parked until the next
//     Open frees its member record: until then peers make an unneeded
//     FUTEX_WAKE whenever they would have woken a waiter, and Stats
//     over-count parked waiters. Nothing is lost or blocked by it.
//
// The queue never wedges: holes and stuck slots are repaired by whichever
// waiter reaches them; parked waiters re-check every 10 ms even when nobody
// wakes them, because a claimant that dies never calls Notify.
//
// Liveness is judged by /proc/PID/stat (pid, zombie state, start time), so
// every process using a queue must run in the same PID namespace, as for
// robust futexes. An unreadable /proc counts as "alive": a wrong "dead"
// would corrupt the queue, a wrong "alive" only delays a repair.
//
// # Waiting
//
// A blocked call first re-checks for up to WithSpin (default 100 µs):
// with a CPU pause, then runtime.Gosched, then sched_yield so that peers
// sharing the core get to run. Only then does it park on the items or
// slots notifier (a futex word with a waiter count). Parked consumers wait
// for the item at the dequeue cursor, so a producer calls Notify only when
// its claim starts at or before the dequeue cursor it sees after
// publishing, and only if the waiter count is non-zero; symmetrically a
// consumer notifies producers only when they have wrapped onto a slot it
// released. So a parked peer costs one FUTEX_WAKE, not one per item.
// The waiter counts consulted are the queue's own (itemsParked,
// slotsParked), mirrored per member record, not the notifier's: a process
// killed while parked would leave the notifier's count high forever, while
// its share of the queue's count is given back when the next Open frees
// its member record.
//
// # The SysV backend and SEM_UNDO
//
// Semaphores: slots (free capacity), items (queued items), lock (a binary
// semaphore) and dirty. A push is
//
//	semop {lock -1 UNDO, dirty ==0, dirty +1, slots -1}, all NOWAIT  (atomic)
//	write item at tail; tail++                                       (commit)
//	semop {items +1, dirty -1, lock +1 UNDO}                         (atomic)
//
// and a pop mirrors it. The first semop never sleeps: the kernel completes
// a sleeping semop as soon as it can proceed, which would hand the lock to
// a process that is not running yet and queue everybody behind it (a lock
// convoy; 4 producers and 4 consumers moved ~50k items/s that way). So a
// caller sleeps only in {slots -1, slots +1} (wait for a free slot without
// taking it; items for a consumer), retries while head and tail suggest a
// token exists, yielding between attempts, and after 16 failures takes the
// lock the blocking way and looks at the state under it. SEM_UNDO is on the lock only: if the holder dies,
// the kernel releases the lock. It is never on slots or items: the kernel
// would undo a dead producer's V(items) at its exit, un-counting an item it
// really produced, and undo a dead consumer's P(items), resurrecting an
// item it really consumed. Instead, the token taken from slots/items is
// taken in the same atomic semop as the lock, so outside the lock nobody
// holds a token: while the lock is held, items and slots must equal
// tail-head and capacity-(tail-head) up to the holder's own token. The
// dirty semaphore (no undo) is 1 exactly while a holder is inside; a holder
// that dies leaves it at 1 with the lock released. The next locker's
// "dirty ==0" fails (EAGAIN), so it takes the lock alone, sees dirty >= 2,
// and recomputes slots and items from head and tail, which changed only at
// the single commit store. Sleepers waiting for a token look again every
// 20 ms, since a holder that died between its commit and its post leaves
// the token missing until somebody repairs. So the SysV backend loses exactly what
// the futex backend loses: a consumer killed after its commit loses its
// item; a producer killed after its commit still delivers its item.
//
// After CloseWrites both counting semaphores carry a bonus of 8192 so that
// every blocked producer and consumer wakes, sees closed, and puts its
// token back; this bounds SysV capacity to 16384.
//
// # Never trusting the segment
//
// Cursors, sequence numbers and lane words are validated on every use: a
// sequence number that no legal history can produce, a cursor beyond the
// 56-bit range or a dequeue cursor ahead of the enqueue cursor makes the
// operation return an error wrapping ErrCorrupt. A value that claims a peer
// moved on is re-checked against the cursor, so garbage cannot make a
// caller spin; the worst a hostile peer can do is make callers wait (their
// context still bounds the wait) or return odd values.
//
// # Concurrency
//
// All methods of a Queue may be called concurrently from any number of
// goroutines, except Close, which must not run concurrently with any other
// method. A Queue handle belongs to the process that created or opened it.
package shmqueue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	stdsync "sync"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	"github.com/shmkit/shmkit/sync"
)

// Sentinel errors, re-exported from layout (errors.Is works with either).
var (
	ErrClosed          = layout.ErrClosed
	ErrFull            = layout.ErrFull
	ErrEmpty           = layout.ErrEmpty
	ErrCorrupt         = layout.ErrCorrupt
	ErrTypeMismatch    = layout.ErrTypeMismatch
	ErrUnsupportedType = layout.ErrUnsupportedType
)

// ErrTooManyHandles reports that every member record of a futex queue is
// held by a live handle (see WithMaxHandles).
var ErrTooManyHandles = errors.New("shmqueue: too many attached handles")

// Backend selects the synchronization a queue uses. Values are part of the
// on-segment format.
type Backend uint8

const (
	// BackendFutex is the lock-free ring parking on futex notifiers.
	BackendFutex Backend = 1
	// BackendSysV is the {slots, items, lock} System V semaphore design.
	BackendSysV Backend = 2
)

func (b Backend) String() string {
	switch b {
	case BackendFutex:
		return "futex"
	case BackendSysV:
		return "sysv"
	}
	return fmt.Sprintf("backend(%d)", uint8(b))
}

// Header parameter words (layout.Header.Params).
const (
	paramBackend = 0 // Backend
	paramMembers = 1 // number of member records
	paramLanes   = 2 // lanes per member record
	paramSemKey  = 3 // SysV key (uint32 of the int32), 0 for IPC_PRIVATE
	paramSemID   = 4 // SysV semaphore set identifier
)

const (
	// DefaultMaxHandles is the default number of member records: handles
	// (Create/Open in some process) that may be attached at once.
	DefaultMaxHandles = 64
	// maxHandles bounds WithMaxHandles and what Open accepts.
	maxHandles = 4096
	// maxCapacity bounds the futex capacity (the slot region stays below
	// 2^46 bytes anyway).
	maxCapacity = 1 << 32
	// maxSysVCapacity bounds the SysV capacity: slots + closeBonus must fit
	// a semaphore (SEMVMX 32767).
	maxSysVCapacity = 1 << 14
)

type config struct {
	layout     []layout.Option
	segment    []segment.Option
	mode       os.FileMode
	backend    Backend
	semKey     int32
	ftokPath   string
	ftokID     uint8
	maxHandles int
	policy     sync.WaitPolicy
	spin       time.Duration
}

// Option configures Create and Open.
type Option func(*config)

// WithLayout passes options to layout.Create / layout.Open.
func WithLayout(opts ...layout.Option) Option {
	return func(c *config) { c.layout = append(c.layout, opts...) }
}

// WithMode sets the permission bits of the segment and of a SysV
// semaphore set (default 0600).
func WithMode(m os.FileMode) Option {
	return func(c *config) {
		c.mode = m
		c.segment = append(c.segment, segment.WithMode(m))
	}
}

// WithPopulate prefaults the mapping (MAP_POPULATE).
func WithPopulate() Option {
	return func(c *config) { c.segment = append(c.segment, segment.WithPopulate()) }
}

// WithBackend chooses the synchronization backend at Create (ignored by
// Open, which uses the creator's choice).
func WithBackend(b Backend) Option { return func(c *config) { c.backend = b } }

// WithSysVKey sets the key of the SysV semaphore set (BackendSysV only).
// The default is a private set (IPC_PRIVATE) found by its identifier, which
// the header records; a chosen key (or one from sync.Ftok) is recorded too
// and makes the set findable with ipcs by key.
func WithSysVKey(key int32) Option {
	return func(c *config) { c.semKey = key }
}

// WithSysVFtok derives the key of the SysV semaphore set from an existing
// file and a project id, as ftok(3) does (BackendSysV only). ftok keys can
// collide (they keep only 16 bits of the inode); Create then fails with an
// error matching fs.ErrExist instead of sharing a stranger's set.
func WithSysVFtok(path string, id uint8) Option {
	return func(c *config) { c.ftokPath, c.ftokID = path, id }
}

// WithMaxHandles sets how many handles may be attached at once (Create
// only; default 64). Each handle of the futex backend owns one 128-byte
// member record for the whole time it is open.
func WithMaxHandles(n int) Option { return func(c *config) { c.maxHandles = n } }

// WithWaitPolicy chooses how blocked calls of this handle wait (default
// sync.SpinThenPark; futex backend only).
func WithWaitPolicy(p sync.WaitPolicy) Option { return func(c *config) { c.policy = p } }

// DefaultSpin is how long a blocked call of the futex backend keeps
// re-checking before it parks in the kernel.
const DefaultSpin = 100 * time.Microsecond

// WithSpin sets how long a blocked call keeps re-checking (yielding)
// before it parks (futex backend; default DefaultSpin). Longer spins trade
// CPU for fewer sleeps and wake-ups when producers and consumers run at
// similar rates.
func WithSpin(d time.Duration) Option { return func(c *config) { c.spin = d } }

func buildConfig(opts []Option) config {
	c := config{mode: 0o600, backend: BackendFutex, maxHandles: DefaultMaxHandles, policy: sync.SpinThenPark, spin: DefaultSpin}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

func (c *config) layoutOptions() []layout.Option {
	opts := append([]layout.Option(nil), c.layout...)
	if len(c.segment) > 0 {
		opts = append(opts, layout.WithSegment(c.segment...))
	}
	return opts
}

// Queue is a handle to a shared bounded MPMC queue of T. See the package
// documentation for the concurrency rules and crash semantics.
type Queue[T any] struct {
	seg     *layout.Segment
	spec    string
	backend Backend
	fq      *futexQueue[T]
	sq      *sysvQueue[T]

	closeMu stdsync.Mutex
	closed  atomic.Bool
}

// Create makes a queue of the given capacity at spec. The futex backend
// rounds capacity up to a power of two (at least 2); the SysV backend
// accepts 1..16384 and rounds the same way. It fails if spec exists.
func Create[T any](spec string, capacity int, opts ...Option) (*Queue[T], error) {
	c := buildConfig(opts)
	t := reflect.TypeFor[T]()
	if _, err := layout.Describe(t); err != nil {
		return nil, err
	}
	if capacity <= 0 || capacity > maxCapacity {
		return nil, fmt.Errorf("shmqueue: create %s: capacity %d out of range [1,%d]", spec, capacity, maxCapacity)
	}
	cp := uint64(2)
	for cp < uint64(capacity) {
		cp <<= 1
	}
	if c.maxHandles <= 0 || c.maxHandles > maxHandles {
		return nil, fmt.Errorf("shmqueue: create %s: max handles %d out of range [1,%d]", spec, c.maxHandles, maxHandles)
	}
	d := layout.Desc{
		Kind:     layout.KindQueue,
		Types:    []reflect.Type{t},
		Capacity: cp,
		Regions: []layout.Region{
			{Size: controlSize, Align: layout.LineSize},
			{Size: cp * slotSize[T](), Align: layout.LineSize},
			{Size: uint64(c.maxHandles) * memberSize, Align: layout.LineSize},
		},
	}
	d.Params[paramBackend] = uint64(c.backend)
	d.Params[paramMembers] = uint64(c.maxHandles)
	d.Params[paramLanes] = lanesPerMember

	var sem *sync.SemSet
	switch c.backend {
	case BackendFutex:
	case BackendSysV:
		if cp > maxSysVCapacity {
			return nil, fmt.Errorf("shmqueue: create %s: SysV backend capacity %d exceeds %d", spec, cp, maxSysVCapacity)
		}
		key := c.semKey
		if c.ftokPath != "" {
			k, err := sync.Ftok(c.ftokPath, c.ftokID)
			if err != nil {
				return nil, fmt.Errorf("shmqueue: create %s: %w", spec, err)
			}
			key = k
		}
		var err error
		sem, err = sync.CreateSemSet(key, numSems, c.mode)
		if err != nil {
			return nil, fmt.Errorf("shmqueue: create %s: %w", spec, err)
		}
		d.Params[paramSemKey] = uint64(uint32(sem.Key()))
		d.Params[paramSemID] = uint64(sem.ID())
	default:
		return nil, fmt.Errorf("shmqueue: create %s: unknown backend %d", spec, c.backend)
	}
	init := func(s *layout.Segment) error {
		if sem != nil {
			return initSysV(sem, cp)
		}
		return initFutex[T](s, cp)
	}
	seg, err := layout.Create(spec, d, init, c.layoutOptions()...)
	if err != nil {
		if sem != nil {
			_ = sem.Remove()
		}
		return nil, err
	}
	q, err := attachQueue[T](seg, spec, &c, sem)
	if err != nil {
		_ = seg.Close()
		_ = segment.Remove(spec)
		if sem != nil {
			_ = sem.Remove()
		}
		return nil, err
	}
	return q, nil
}

// Open attaches the queue at spec, which must hold a queue of T.
func Open[T any](spec string, opts ...Option) (*Queue[T], error) {
	c := buildConfig(opts)
	t := reflect.TypeFor[T]()
	if _, err := layout.Describe(t); err != nil {
		return nil, err
	}
	seg, err := layout.Open(spec, layout.Expect{Kind: layout.KindQueue, Types: []reflect.Type{t}}, c.layoutOptions()...)
	if err != nil {
		return nil, err
	}
	q, err := attachQueue[T](seg, spec, &c, nil)
	if err != nil {
		_ = seg.Close()
		return nil, err
	}
	return q, nil
}

// Remove deletes the queue at spec: its SysV semaphore set, if it has one,
// and the segment. Handles still attached keep working on the unlinked
// segment (but a SysV queue's operations fail once its set is gone).
func Remove(spec string, opts ...Option) error {
	c := buildConfig(opts)
	seg, err := layout.Open(spec, layout.Expect{Kind: layout.KindQueue}, c.layoutOptions()...)
	if err == nil {
		h := seg.Header()
		if Backend(h.Params[paramBackend]) == BackendSysV {
			if sem, err := openSemSet(h.Params); err == nil {
				_ = sem.Remove()
			}
		}
		_ = seg.Close()
	}
	return segment.Remove(spec)
}

func attachQueue[T any](seg *layout.Segment, spec string, c *config, sem *sync.SemSet) (*Queue[T], error) {
	h := seg.Header()
	cp := h.Capacity
	if cp < 2 || cp > maxCapacity || cp&(cp-1) != 0 {
		return nil, fmt.Errorf("shmqueue: open %s: %w: capacity %d is not a power of two in [2,%d]", spec, ErrCorrupt, cp, uint64(maxCapacity))
	}
	members := h.Params[paramMembers]
	if members == 0 || members > maxHandles || h.Params[paramLanes] != lanesPerMember {
		return nil, fmt.Errorf("shmqueue: open %s: %w: %d member records of %d lanes", spec, ErrCorrupt, members, h.Params[paramLanes])
	}
	if seg.NumRegions() != 3 ||
		uint64(len(seg.Region(0))) != controlSize ||
		uint64(len(seg.Region(1))) != cp*slotSize[T]() ||
		uint64(len(seg.Region(2))) != members*memberSize {
		return nil, fmt.Errorf("shmqueue: open %s: %w: region sizes do not match capacity %d and %d members", spec, ErrCorrupt, cp, members)
	}
	ctl, err := layout.View[control](seg, 0)
	if err != nil {
		return nil, err
	}
	slots, err := layout.ViewSlice[slot[T]](seg, 1, int(cp))
	if err != nil {
		return nil, err
	}
	q := &Queue[T]{seg: seg, spec: spec, backend: Backend(h.Params[paramBackend])}
	switch q.backend {
	case BackendFutex:
		mem, err := layout.ViewSlice[member](seg, 2, int(members))
		if err != nil {
			return nil, err
		}
		fq := &futexQueue[T]{ctl: ctl, slots: slots, mask: cp - 1, cap: cp, members: mem, policy: c.policy, spin: c.spin}
		if err := fq.attach(); err != nil {
			return nil, fmt.Errorf("shmqueue: open %s: %w", spec, err)
		}
		q.fq = fq
	case BackendSysV:
		if cp > maxSysVCapacity {
			return nil, fmt.Errorf("shmqueue: open %s: %w: SysV capacity %d exceeds %d", spec, ErrCorrupt, cp, maxSysVCapacity)
		}
		if sem == nil {
			if sem, err = openSemSet(h.Params); err != nil {
				return nil, fmt.Errorf("shmqueue: open %s: %w", spec, err)
			}
		}
		if sem.Len() != numSems {
			return nil, fmt.Errorf("shmqueue: open %s: %w: semaphore set %d has %d semaphores, want %d", spec, ErrCorrupt, sem.ID(), sem.Len(), numSems)
		}
		q.sq = &sysvQueue[T]{ctl: ctl, slots: slots, cap: cp, mask: cp - 1, sem: sem}
	default:
		return nil, fmt.Errorf("shmqueue: open %s: %w: unknown backend %d", spec, ErrCorrupt, h.Params[paramBackend])
	}
	return q, nil
}

func openSemSet(p [layout.MaxParams]uint64) (*sync.SemSet, error) {
	if key := int32(uint32(p[paramSemKey])); key != 0 {
		s, err := sync.OpenSemSet(key)
		if err != nil {
			return nil, err
		}
		if uint64(s.ID()) != p[paramSemID] {
			return nil, fmt.Errorf("%w: semaphore key %#x now names set %d, header recorded %d", ErrCorrupt, uint32(key), s.ID(), p[paramSemID])
		}
		return s, nil
	}
	if p[paramSemID] > 1<<31 {
		return nil, fmt.Errorf("%w: semaphore set id %d", ErrCorrupt, p[paramSemID])
	}
	return sync.OpenSemSetID(int(p[paramSemID]))
}

func (q *Queue[T]) check() error {
	if q == nil || q.closed.Load() {
		return fmt.Errorf("shmqueue: %w", ErrClosed)
	}
	return nil
}

// Push appends v, blocking while the queue is full, until ctx is done
// (ctx.Err()) or the queue is closed for writes (ErrClosed). The context
// only bounds waiting: a Push that finds room succeeds even if ctx is done.
func (q *Queue[T]) Push(ctx context.Context, v T) error {
	if err := q.check(); err != nil {
		return err
	}
	one := [1]T{v}
	var err error
	if q.fq != nil {
		_, err = q.fq.push(ctx, one[:], true)
	} else {
		_, err = q.sq.push(ctx, one[:], true)
	}
	return err
}

// TryPush appends v if there is room now; otherwise it returns ErrFull
// (or ErrClosed after CloseWrites).
func (q *Queue[T]) TryPush(v T) error {
	if err := q.check(); err != nil {
		return err
	}
	one := [1]T{v}
	var err error
	if q.fq != nil {
		_, err = q.fq.push(context.Background(), one[:], false)
	} else {
		_, err = q.sq.push(context.Background(), one[:], false)
	}
	return err
}

// PushBatch appends all of vs in order, blocking as needed. Items are
// claimed in runs of contiguous positions (futex: up to 64; SysV: as many
// as fit), so another producer's items may be interleaved between runs. It
// returns how many items were pushed: len(vs) with a nil error, or fewer
// with ctx.Err() or ErrClosed. A producer killed inside PushBatch has
// delivered a prefix of its current run (SysV: all of it or none), and the
// rest of the run is skipped.
func (q *Queue[T]) PushBatch(ctx context.Context, vs []T) (int, error) {
	if err := q.check(); err != nil {
		return 0, err
	}
	if q.fq != nil {
		return q.fq.push(ctx, vs, true)
	}
	return q.sq.push(ctx, vs, true)
}

// Pop removes and returns the oldest item, blocking while the queue is
// empty. Once the queue is closed for writes and drained it returns
// ErrClosed; if ctx ends first, ctx.Err().
func (q *Queue[T]) Pop(ctx context.Context) (T, error) {
	var one [1]T
	if err := q.check(); err != nil {
		return one[0], err
	}
	var err error
	if q.fq != nil {
		_, err = q.fq.pop(ctx, one[:], true)
	} else {
		_, err = q.sq.pop(ctx, one[:], true)
	}
	return one[0], err
}

// TryPop removes and returns the oldest item if there is one now;
// otherwise ErrEmpty, or ErrClosed once closed and drained.
func (q *Queue[T]) TryPop() (T, error) {
	var one [1]T
	if err := q.check(); err != nil {
		return one[0], err
	}
	var err error
	if q.fq != nil {
		_, err = q.fq.pop(context.Background(), one[:], false)
	} else {
		_, err = q.sq.pop(context.Background(), one[:], false)
	}
	return one[0], err
}

// PopBatch blocks until at least one item is available, then removes up to
// len(buf) items into buf and returns how many (at least 1 with a nil
// error). It returns 0 and ErrClosed once closed and drained, or ctx.Err().
// A consumer killed inside PopBatch loses the items it had taken out: the
// futex backend takes at most 64 per claim, the SysV backend everything it
// returns at once.
func (q *Queue[T]) PopBatch(ctx context.Context, buf []T) (int, error) {
	if err := q.check(); err != nil {
		return 0, err
	}
	if len(buf) == 0 {
		return 0, nil
	}
	if q.fq != nil {
		return q.fq.pop(ctx, buf, true)
	}
	return q.sq.pop(ctx, buf, true)
}

// TryPopBatch removes up to len(buf) items that are available now. It
// returns 0 and ErrEmpty if none is, or ErrClosed once closed and drained.
func (q *Queue[T]) TryPopBatch(buf []T) (int, error) {
	if err := q.check(); err != nil {
		return 0, err
	}
	if len(buf) == 0 {
		return 0, nil
	}
	if q.fq != nil {
		return q.fq.pop(context.Background(), buf, false)
	}
	return q.sq.pop(context.Background(), buf, false)
}

// CloseWrites marks the queue closed for writes, for every process: later
// pushes fail with ErrClosed, parked producers wake with ErrClosed, and
// consumers drain what is left and then get ErrClosed. Pushes that had
// already claimed their positions complete and are delivered. Closing twice
// is not an error.
func (q *Queue[T]) CloseWrites() error {
	if err := q.check(); err != nil {
		return err
	}
	if q.fq != nil {
		return q.fq.closeWrites()
	}
	return q.sq.closeWrites()
}

// Len returns the number of items in the queue (a snapshot; it includes
// items being pushed or popped right now, and holes not yet skipped).
func (q *Queue[T]) Len() int {
	if q.check() != nil {
		return 0
	}
	if q.fq != nil {
		return q.fq.length()
	}
	return q.sq.length()
}

// Cap returns the capacity.
func (q *Queue[T]) Cap() int {
	if q.check() != nil {
		return 0
	}
	return int(q.seg.Header().Capacity)
}

// Backend returns the queue's synchronization backend.
func (q *Queue[T]) Backend() Backend { return q.backend }

// Segment returns the underlying segment (for tools).
func (q *Queue[T]) Segment() *layout.Segment { return q.seg }

// Stats is a snapshot of a queue's counters, for monitoring tools. Fields
// are read one by one without a lock, so they need not be mutually
// consistent.
type Stats struct {
	Backend Backend
	Cap     int
	Len     int
	// Pushes and Pops count positions claimed by producers and consumers
	// since creation (including holes left by dead producers).
	Pushes, Pops uint64
	// ParkedProducers and ParkedConsumers are goroutines (futex: in any
	// process; SysV: processes) blocked waiting for room or items. A waiter
	// SIGKILLed while parked stays counted (futex backend).
	ParkedProducers, ParkedConsumers int
	// HolesSkipped counts positions claimed by producers that died before
	// publishing, which consumers skipped.
	HolesSkipped uint64
	// SlotsReclaimed counts slots released on behalf of consumers that died
	// between claiming and releasing them (their items are lost).
	SlotsReclaimed uint64
	// Repairs counts SysV lock holders found dead and repaired.
	Repairs uint64
	// Handles is the number of member records held (futex backend),
	// DeadHandles how many of them belong to dead processes (they are
	// taken over by the next Open that finds no free record).
	Handles, DeadHandles int
	Closed               bool
}

// Stats returns a snapshot of the queue's counters.
func (q *Queue[T]) Stats() (Stats, error) {
	if err := q.check(); err != nil {
		return Stats{}, err
	}
	var s Stats
	if q.fq != nil {
		s = q.fq.stats()
	} else {
		var err error
		if s, err = q.sq.stats(); err != nil {
			return s, err
		}
	}
	s.Backend = q.backend
	s.Cap = q.Cap()
	return s, nil
}

// Inspect returns the Stats of the queue at spec without attaching to it
// (no member record is taken, nothing is written), whatever its element
// type: for monitoring tools such as shmctl.
func Inspect(spec string, opts ...Option) (Stats, error) {
	c := buildConfig(opts)
	seg, err := layout.Open(spec, layout.Expect{Kind: layout.KindQueue}, c.layoutOptions()...)
	if err != nil {
		return Stats{}, err
	}
	defer seg.Close()
	h := seg.Header()
	ctl, err := layout.View[control](seg, 0)
	if err != nil {
		return Stats{}, err
	}
	cp := h.Capacity
	if cp < 2 || cp > maxCapacity || cp&(cp-1) != 0 || seg.NumRegions() != 3 {
		return Stats{}, fmt.Errorf("shmqueue: inspect %s: %w: capacity %d, %d regions", spec, ErrCorrupt, cp, seg.NumRegions())
	}
	var s Stats
	switch b := Backend(h.Params[paramBackend]); b {
	case BackendFutex:
		n := h.Params[paramMembers]
		if n == 0 || n > maxHandles || uint64(len(seg.Region(2))) != n*memberSize {
			return Stats{}, fmt.Errorf("shmqueue: inspect %s: %w: %d member records", spec, ErrCorrupt, n)
		}
		members, err := layout.ViewSlice[member](seg, 2, int(n))
		if err != nil {
			return Stats{}, err
		}
		s = futexStats(ctl, members, cp)
	case BackendSysV:
		sem, err := openSemSet(h.Params)
		if err != nil {
			return Stats{}, fmt.Errorf("shmqueue: inspect %s: %w", spec, err)
		}
		if s, err = sysvStats(ctl, sem, cp); err != nil {
			return s, err
		}
	default:
		return Stats{}, fmt.Errorf("shmqueue: inspect %s: %w: unknown backend %d", spec, ErrCorrupt, h.Params[paramBackend])
	}
	s.Backend = Backend(h.Params[paramBackend])
	s.Cap = int(cp)
	return s, nil
}

// Close detaches the handle: it releases the handle's member record and
// unmaps the segment. The queue itself stays (see Remove) and is not
// closed for writes. Close must not run concurrently with other methods;
// afterwards they return ErrClosed.
func (q *Queue[T]) Close() error {
	if q == nil {
		return nil
	}
	q.closeMu.Lock()
	defer q.closeMu.Unlock()
	if q.closed.Swap(true) {
		return nil
	}
	if q.fq != nil {
		q.fq.detach()
	}
	return q.seg.Close()
}

// parkRecheck bounds how long a parked waiter sleeps without being woken:
// a claimant that dies never notifies, so waiters look again on their own.
const parkRecheck = 10 * time.Millisecond

// stuckCheck is how long a waiter lets a claimed-but-unfinished slot sit
// before checking whether its claimant is alive.
const stuckCheck = time.Millisecond
