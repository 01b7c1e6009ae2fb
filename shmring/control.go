package shmring

import (
	"fmt"
	"reflect"
	"sync/atomic"

	"github.com/shmkit/shmkit/layout"
	shmsync "github.com/shmkit/shmkit/sync"
)

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
