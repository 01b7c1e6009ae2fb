package shmmap

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/layout"
)

// Sentinel errors, re-exported from package layout; test with errors.Is.
var (
	ErrClosed          = layout.ErrClosed
	ErrFull            = layout.ErrFull
	ErrCorrupt         = layout.ErrCorrupt
	ErrTypeMismatch    = layout.ErrTypeMismatch
	ErrUnsupportedType = layout.ErrUnsupportedType
	ErrOwnerDead       = layout.ErrOwnerDead
	ErrNotRecoverable  = layout.ErrNotRecoverable
)

// ErrReadOnly is returned by mutating methods of a Map opened on a
// read-only mapping (segment.ReadOnly), and by reads that could not finish
// lock-free: such a handle cannot take a shard lock, so it cannot wait out
// a stalled writer or repair after a dead one.
var ErrReadOnly = errors.New("shmmap: read-only handle")

// ErrLockTimeout is returned when a shard lock stays held longer than the
// lock timeout (WithLockTimeout, default DefaultLockTimeout) by a process
// that looks alive: a writer stopped (SIGSTOP, a debugger) inside its
// critical section, or a peer that scribbled the lock word with the id of
// a live thread. Errors wrapping it also wrap context.DeadlineExceeded.
var ErrLockTimeout = errors.New("shmmap: shard lock not acquired in time")

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
}

// Close unmaps the map. The segment stays until segment.Remove. Close must
// not race with other calls on this handle; other handles and processes are
// unaffected. Calls after Close return ErrClosed (Get: zero, false).
func (m *Map[K, V]) Close() error {
	if m.closed.Swap(true) {
		return ErrClosed
	}
	return m.seg.Close()
}

// Cap returns the capacity the map was created for. Put may succeed past
// it; see the package documentation.
func (m *Map[K, V]) Cap() int { return m.capacity }

// Segment returns the underlying segment (for tools).
func (m *Map[K, V]) Segment() *layout.Segment { return m.seg }

// Len returns the number of keys, summed over shards without locking: under
// concurrent writes it is a moment-by-moment approximation.
func (m *Map[K, V]) Len() int {
	if m.closed.Load() {
		return 0
	}
	var n uint64
	for sh := range m.shards {
		n += min(m.ctl(sh).Count.Load(), m.limit)
	}
	return int(n)
}
