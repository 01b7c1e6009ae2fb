package shmqueue

import (
	"context"
	"fmt"
	"time"

	"github.com/shmkit/shmkit/internal/faultguard"
	"github.com/shmkit/shmkit/internal/options"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	"github.com/shmkit/shmkit/sync"
)

// Sentinel errors, the same set re-exported the same way by every structure
// package (defined once in package layout). Test with errors.Is.
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
	ErrCapacity        = layout.ErrCapacity
)

// ErrTruncated is wrapped by the error a queue call returns when the
// segment was truncated under it (a peer with write access called
// ftruncate on a posix: or file: segment, and the pages the call touched
// are gone): "segment truncated by another process". It wraps ErrCorrupt;
// the handle is then good only for Close, and every other call returns
// that same first error. It is the same value as shmring.ErrTruncated.
var ErrTruncated = faultguard.ErrTruncated

// ErrTooManyHandles reports that every member record of a futex queue is
// held by a live handle (see WithMaxHandles). It wraps ErrCapacity.
var ErrTooManyHandles = fmt.Errorf("%w: every member record is held by a live handle (see WithMaxHandles)", ErrCapacity)

// TryStallLimit bounds how long one TryPush, TryPop or TryPopBatch call
// waits out operations of live peers that are in flight
// where it needs to go (see the package documentation, "Try operations").
// A peer stays inside an operation for microseconds unless it is stopped
// (SIGSTOP, a debugger) or starved of CPU.
const TryStallLimit = 500 * time.Millisecond

// ErrPeerStalled is wrapped by the error of a Try operation that waited
// TryStallLimit for a live peer to finish an operation in flight and gave
// up. The Try operation had no effect. It wraps context.DeadlineExceeded
// (the Try's own bound ran out); it is neither ErrFull nor ErrEmpty,
// because the queue was neither (a stopped producer's claimed item is in
// the queue; a stopped consumer's popped item is not).
var ErrPeerStalled = fmt.Errorf("a live peer stayed inside an operation for over %v (stopped, or starved of CPU): %w", TryStallLimit, context.DeadlineExceeded)

// stalled is the error of a Try operation that gave up on the peer in
// flight at pos (the producer of pos for a consumer; the consumer of the
// slot's previous round for a producer).
func stalled(pos uint64, consumer bool) error {
	if consumer {
		return fmt.Errorf("%w: the producer of position %d has not published it", ErrPeerStalled, pos)
	}
	return fmt.Errorf("%w: the slot of position %d is still being popped", ErrPeerStalled, pos)
}

// ErrSemRemoved reports that a SysV-backend queue's semaphore set was
// removed by someone else (ipcrm -s/-S, or semctl IPC_RMID) while the
// segment stayed: the queue cannot be used any more (its lock and counts
// are gone, and a new set would not know who held what). Operations of
// live handles and Open fail with an error wrapping it that names the
// set's key and id; the fix is to remove the queue (shmctl rm SPEC, or
// Remove) and create it again. It wraps sync.ErrRemoved, and on purpose
// not ErrClosed: a consumer that stops on ErrClosed would take the queue
// for drained while items may still be in it. (A queue that was closed for
// writes and is empty has ended: a consumer's Pop then says ErrClosed even
// if the set is gone, as after a producer's CloseWrites and Remove.)
var ErrSemRemoved = fmt.Errorf("the queue's SysV semaphore set was removed by someone else: %w", sync.ErrRemoved)

// Option configures Create and Open. Every shmkit structure takes the same
// option vocabulary; the constructors below mean the same in each.
type Option = options.Option

// Options every structure takes. WithMode also sets the permission bits of
// a SysV queue's semaphore set.
var (
	WithMode        = options.WithMode        // permission bits of a created segment (default 0600)
	WithPopulate    = options.WithPopulate    // pre-fault the mapping
	WithSegment     = options.WithSegment     // segment-layer options (e.g. segment.WithTrustOwner)
	WithLayout      = options.WithLayout      // layout-layer options
	WithInitTimeout = options.WithInitTimeout // how long Open waits for a live creator
	WithWaitPolicy  = options.WithWaitPolicy  // how this handle's blocking calls wait (default DefaultWaitPolicy)
)

// DefaultWaitPolicy is how a queue handle's blocking calls wait unless
// WithWaitPolicy says otherwise: one batch of tight re-checks (Spin 0),
// then about 100 µs of yielding re-checks (producers and consumers of a busy queue run at
// similar rates, and a sleep plus wake-up costs more than the peer needs
// to make room or an item), then park.
var DefaultWaitPolicy = sync.WaitPolicy{Spin: 2 * time.Microsecond, Yield: 100 * time.Microsecond}

// settings are the queue's own options (Config.Own).
type settings struct {
	backend    Backend
	semKey     int32
	ftokPath   string
	ftokID     uint8
	maxHandles int
	faultGuard bool
}

// WithBackend chooses the synchronization backend at Create (ignored by
// Open, which uses the creator's choice).
func WithBackend(b Backend) Option {
	return options.New("shmqueue", "WithBackend", func(c *options.Config) { c.Own.(*settings).backend = b })
}

// WithSysVKey sets the key of the SysV semaphore set (BackendSysV only).
// The default is a private set (IPC_PRIVATE) found by its identifier, which
// the header records; a chosen key (or one from sync.Ftok) is recorded too
// and makes the set findable with ipcs by key.
func WithSysVKey(key int32) Option {
	return options.New("shmqueue", "WithSysVKey", func(c *options.Config) { c.Own.(*settings).semKey = key })
}

// WithSysVFtok derives the key of the SysV semaphore set from an existing
// file and a project id, as ftok(3) does (BackendSysV only). ftok keys can
// collide (they keep only 16 bits of the inode); Create then fails with an
// error matching fs.ErrExist instead of sharing a stranger's set.
func WithSysVFtok(path string, id uint8) Option {
	return options.New("shmqueue", "WithSysVFtok", func(c *options.Config) {
		s := c.Own.(*settings)
		s.ftokPath, s.ftokID = path, id
	})
}

// WithMaxHandles sets how many handles may be attached at once to a futex
// queue (Create only; default DefaultMaxHandles). Each handle owns one
// 128-byte member record for the whole time it is open.
func WithMaxHandles(n int) Option {
	return options.New("shmqueue", "WithMaxHandles", func(c *options.Config) { c.Own.(*settings).maxHandles = n })
}

// WithFaultGuard runs every call of the handle under the fault guard, the
// per-item fast paths (Push, TryPush, Pop, TryPop) included: a segment
// truncated by another process then gives an error wrapping ErrCorrupt and
// ErrTruncated from whichever call touches a lost page, never SIGBUS. It
// costs a few ns per call (see BenchmarkFaultGuard); without it those calls
// guard only their waits. On a segment that cannot fault (segment's
// CannotFault: a sealed memfd, as Create makes, where the kernel cannot
// refuse memory; see "Truncated segments") it changes nothing: no call there
// is guarded, or needs to be.
func WithFaultGuard() Option {
	return options.New("shmqueue", "WithFaultGuard", func(c *options.Config) { c.Own.(*settings).faultGuard = true })
}

// buildConfig applies the options of Create, Open and Remove.
func buildConfig(op, spec string, opts []Option) (options.Config, *settings, error) {
	s := &settings{backend: BackendFutex, maxHandles: DefaultMaxHandles}
	cfg, err := options.Build("shmqueue", s, opts)
	if err != nil {
		return cfg, s, options.BuildError("shmqueue", op, spec, err)
	}
	return cfg, s, nil
}

// Remove removes everything a queue at spec made: its SysV semaphore set,
// if it has one (and it is still there), and the segment. Handles still
// attached keep working on the unlinked segment (but a SysV queue's
// operations fail with ErrSemRemoved once its set is gone).
func Remove(spec string, opts ...Option) error {
	cfg, _, err := buildConfig("remove", spec, opts)
	if err != nil {
		return err
	}
	if seg, err := layout.Open(spec, layout.Expect{Kind: layout.KindQueue}, cfg.Layout...); err == nil {
		h := seg.Header()
		if Backend(h.Params[paramBackend]) == BackendSysV {
			if sem, err := openSemSet(h.Params); err == nil {
				_ = sem.Remove()
			}
		}
		_ = seg.Close()
	}
	return layout.WrapOp("shmqueue", "remove", spec, segment.Remove(spec))
}
