package shmmap

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/faultguard"
	"github.com/shmkit/shmkit/internal/options"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
)

// Sentinel errors, the same set re-exported the same way by every structure
// package (defined once in package layout). Test with errors.Is. Every error
// a Map returns is a *layout.OpError naming the package, the operation and
// the segment ("shmmap: put posix:/cache: shmkit: full: ...").
var (
	ErrTypeMismatch    = layout.ErrTypeMismatch
	ErrBadMagic        = layout.ErrBadMagic
	ErrVersion         = layout.ErrVersion
	ErrCorrupt         = layout.ErrCorrupt
	ErrTooSmall        = layout.ErrTooSmall
	ErrClosed          = layout.ErrClosed
	ErrFull            = layout.ErrFull
	ErrEmpty           = layout.ErrEmpty
	ErrOwnerDead       = layout.ErrOwnerDead
	ErrUnsupportedType = layout.ErrUnsupportedType
	ErrLagged          = layout.ErrLagged
	ErrNotReady        = layout.ErrNotReady
	ErrUntrusted       = layout.ErrUntrusted
	ErrRoleTaken       = layout.ErrRoleTaken
	ErrCapacity        = layout.ErrCapacity
	ErrNotRecoverable  = layout.ErrNotRecoverable
	// ErrTruncated: a call touched pages of a posix: or file: segment that
	// another process truncated (see WithFaultGuard). It wraps ErrCorrupt;
	// it is the same value as shmring.ErrTruncated and shmqueue's.
	ErrTruncated = faultguard.ErrTruncated
)

// Options every structure takes.
var (
	WithMode        = options.WithMode        // permission bits of a created segment (default 0600)
	WithPopulate    = options.WithPopulate    // pre-fault the mapping
	WithSegment     = options.WithSegment     // segment-layer options (e.g. segment.WithTrustOwner)
	WithLayout      = options.WithLayout      // layout-layer options
	WithInitTimeout = options.WithInitTimeout // how long Open waits for a live creator
	// WithWaitPolicy is accepted for a uniform vocabulary, but a map never
	// blocks except on a shard lock, which WithLockTimeout bounds: the
	// policy changes nothing.
	WithWaitPolicy = options.WithWaitPolicy
)

// Remove removes the map segment named by spec: everything a map makes.
// Handles still open keep their mapping until Close.
func Remove(spec string) error { return layout.WrapOp("shmmap", "remove", spec, segment.Remove(spec)) }

// ErrReadOnly is returned by mutating methods of a Map opened on a
// read-only mapping (segment.ReadOnly), and by reads that could not finish
// lock-free: such a handle cannot take a shard lock, so it cannot wait out
// a stalled writer or repair after a dead one.
var ErrReadOnly = errors.New("shmkit: read-only map handle")

// ErrLockTimeout is returned when a shard lock stays held longer than the
// lock timeout (WithLockTimeout, default DefaultLockTimeout) by a process
// that looks alive: a writer stopped (SIGSTOP, a debugger) inside its
// critical section, or a peer that scribbled the lock word with the id of
// a live thread of the recorded holder (even one of this process's own
// keeper threads: see TestScribbledOwnKeeperTID). Errors wrapping it also wrap context.DeadlineExceeded.
var ErrLockTimeout = errors.New("shmkit: map shard lock not acquired in time")

// DefaultLockTimeout bounds how long an operation waits for a shard lock
// held by a live process. A healthy writer holds a shard for well under a
// microsecond plus its own scheduling delays.
const DefaultLockTimeout = 10 * time.Second

// Map is a handle on a shared hash table. See the package documentation for
// the algorithms and the crash semantics.
//
// All methods may be called concurrently from any goroutines and any
// processes, except Close, which must not race with other calls on the same
// handle. Keys and values are copied in and out; nothing returned aliases
// the segment.
type Map[K comparable, V any] struct {
	seg      *layout.Segment
	shardMem []byte       // region 0: shards * stride bytes of shard blocks
	slots    []slot[K, V] // region 1: shards * perShard

	shards uint64
	stride uint64 // bytes per shard block

	h        hasher
	valSpans []span

	shardShift uint   // 64 - shardBits: tag >> shardShift is the shard
	perShard   uint64 // slots per shard
	limit      uint64 // max live keys per shard
	capacity   int
	seed       uint64

	readOnly    bool // mapped read-only: never lock
	lockTimeout time.Duration
	repairs     atomic.Uint64 // repairs done by this handle (Stats)
	lockedReads atomic.Uint64 // reads that fell back to the lock (Stats)
	closed      atomic.Bool
	spec        string // for errors

	// fg remembers the first memory fault (a truncated segment) any call
	// caught; afterwards every call but Close returns its error.
	fg faultguard.Latch
}

// Close unmaps the map. The segment stays until Remove. Close must not race
// with other calls on this handle; other handles and processes are
// unaffected. Close is idempotent: a second Close returns nil. Other calls
// after Close return ErrClosed (Get: zero, false; Len: 0). Close touches
// no shared memory, so it works after a memory fault too.
func (m *Map[K, V]) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	return m.wrap("close", m.seg.Close())
}

// check is the entry test of every call: ErrClosed after Close, the fault
// error after a memory fault, else nil.
func (m *Map[K, V]) check(op string) error {
	if m.closed.Load() {
		return m.wrap(op, ErrClosed)
	}
	return m.fg.Err()
}

// guardRead is deferred, with m.fg.Enable(), by the guarded reads: a
// memory fault inside the mapping makes the results zero, false and the
// latch's error (if errp is not nil); any other panic goes on.
func (m *Map[K, V]) guardRead(v *V, ok *bool, errp *error, op string, a faultguard.Armed) {
	// Unarmed: the locked read path on a segment that cannot fault (see
	// faultguard.Latch.Guard).
	if a == faultguard.Unarmed {
		return
	}
	if m.fg.Catch(recover(), a, errp, op) {
		*v, *ok = *new(V), false
	}
}

// wrap gives err the package's one error shape, naming op and the segment.
func (m *Map[K, V]) wrap(op string, err error) error { return layout.WrapOp("shmmap", op, m.spec, err) }

// Cap returns the capacity the map was created for. Put may succeed past
// it; see the package documentation.
func (m *Map[K, V]) Cap() int { return m.capacity }

// Segment returns the underlying segment (for tools).
func (m *Map[K, V]) Segment() *layout.Segment { return m.seg }

// Len returns the number of keys, summed over shards without locking: under
// concurrent writes it is a moment-by-moment approximation. It is 0 after
// Close or a memory fault (which it records: the next call returns it).
func (m *Map[K, V]) Len() (n int) {
	if m.check("len") != nil {
		return 0
	}
	defer func(a faultguard.Armed) {
		if m.fg.Catch(recover(), a, nil, "len") {
			n = 0
		}
	}(m.fg.Enable())
	var c uint64
	for sh := range m.shards {
		c += min(m.ctl(sh).Count.Load(), m.limit)
	}
	return int(c)
}
