package sync

import (
	"context"
	"fmt"
	"time"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/internal/shmerr"
)

// Waitable is a structure a WaitSet can wait on: shmring.Ring, ByteRing,
// shmqueue.Queue and shmbus.Subscriber implement it.
type Waitable interface {
	// WaitSource returns the Notifier that the structure's writers signal
	// when they make something readable, and a check that reports whether
	// something is readable now. The check reads shared state with atomic
	// loads only and has no side effects; once the structure is closed it
	// reports true, so the caller's next read says ErrClosed.
	WaitSource() (*Notifier, func() bool)
}

// MaxWaitSources is the most sources one WaitSet takes: futex_waitv waits on
// at most 128 words, and one of them is the WaitSet's cancel word. More
// sources need a second WaitSet in another goroutine, or a Queue or Bus
// that gathers them.
const MaxWaitSources = futex.MaxWaitv - 1

// waitSetRecheck is how often a parked WaitSet looks at its sources again
// (waitLoop's poll): a source's writer that dies between making it
// readable and notifying (a queue producer killed after its claim) never
// wakes it, and the sources notify only for the change that makes them
// readable, so no later write would either.
const waitSetRecheck = 10 * time.Millisecond

// WaitSet waits until any of several sources has something to read, parking
// on all their Notifiers with one futex_waitv call: no goroutine per source,
// and while idle one look every waitSetRecheck (10 ms), for a writer that
// died before it could notify.
//
// Wait may be called by one goroutine at a time. The sources must stay open
// while a Wait is in progress; closing one between Waits is fine (it then
// reads as ready).
type WaitSet struct {
	notes  []*Notifier
	ready  []func() bool
	addrs  []*uint32
	vals   []uint32
	next   int // where the next scan starts: ready sources take turns
	policy WaitPolicy
	closed bool
}

// NewWaitSet returns a WaitSet over srcs (at least one, at most
// MaxWaitSources). Wait reports sources by their index in srcs.
func NewWaitSet(srcs ...Waitable) (*WaitSet, error) {
	if len(srcs) == 0 || len(srcs) > MaxWaitSources {
		return nil, shmerr.WrapOp("sync", "new wait set", "", fmt.Errorf("%w: %d sources (want 1 to %d: futex_waitv's limit)", shmerr.ErrCapacity, len(srcs), MaxWaitSources))
	}
	w := &WaitSet{policy: SpinThenPark}
	for i, s := range srcs {
		if s == nil {
			return nil, shmerr.WrapOp("sync", "new wait set", "", fmt.Errorf("source %d is nil", i))
		}
		n, ready := s.WaitSource()
		if n == nil || ready == nil {
			return nil, shmerr.WrapOp("sync", "new wait set", "", fmt.Errorf("source %d (%T): %w", i, s, shmerr.ErrClosed))
		}
		w.notes = append(w.notes, n)
		w.ready = append(w.ready, ready)
		w.addrs = append(w.addrs, n.futexWord())
	}
	w.vals = make([]uint32, len(srcs))
	return w, nil
}

// SetPolicy sets how Wait spends its time before parking (default
// SpinThenPark).
func (w *WaitSet) SetPolicy(p WaitPolicy) { w.policy = p }

// scan returns the index of a ready source, starting after the last one
// reported so that a busy source cannot starve the others, or -1.
func (w *WaitSet) scan() int {
	n := len(w.ready)
	for k := range n {
		i := (w.next + k) % n
		if w.ready[i]() {
			w.next = (i + 1) % n
			return i
		}
	}
	return -1
}

// Wait blocks until some source has something to read and returns its
// index, or returns ctx's error. A source ready when ctx ends wins. It
// does not read from the source: the caller does, with the source's own
// TryPop/TryNext (another reader may have been quicker; then Wait again).
func (w *WaitSet) Wait(ctx context.Context) (int, error) {
	if w.closed {
		return -1, shmerr.WrapOp("sync", "wait", "", shmerr.ErrClosed)
	}
	found := -1
	ready := func() bool {
		found = w.scan()
		return found >= 0
	}
	park := func(ctx context.Context, timeout time.Duration) error {
		for i, n := range w.notes {
			v, ok := n.arm()
			if !ok {
				return nil // a Notify is in flight: look again
			}
			w.vals[i] = v
		}
		if ready() {
			return nil
		}
		_, err := futex.WaitAny(ctx, w.addrs, w.vals, timeout)
		return err
	}
	if err := w.policy.waitLoop(ctx, ready, park, waitSetRecheck, LookAgain); err != nil {
		return -1, err
	}
	return found, nil
}

// Close releases the WaitSet. It does not close the sources. Idempotent.
func (w *WaitSet) Close() error {
	w.closed = true
	w.notes, w.ready, w.addrs = nil, nil, nil
	return nil
}
