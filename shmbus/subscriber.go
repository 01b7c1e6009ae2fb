package shmbus

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	shmsync "github.com/shmkit/shmkit/sync"
)

// ---- subscribers ----

// Subscriber reads every message of a bus from its cursor on. It is a
// sync.Waitable. Use it from one goroutine at a time.
type Subscriber[T any] struct {
	b         *Bus[T]
	rec       *record
	idx       int
	durable   bool
	state     uint8
	cursor    uint64 // private copy of rec.cursor
	tailCache uint64
	peeked    uint64
	pending   uint64 // missed messages to report (durable rejoin)
	sawClosed bool
	cerr      error
	dataReady func() bool
	closedH   atomic.Bool
}

// LaggedError is returned (wrapped) by Next and NextBatch when the
// subscriber was lapped: Missed messages were overwritten before it read
// them (or, in Block mode, while it was dead and skipped). The next call
// continues with the oldest message still retained.
type LaggedError struct {
	Missed uint64
}

func (e *LaggedError) Error() string {
	return fmt.Sprintf("%v: missed %d messages", ErrLagged, e.Missed)
}

// Unwrap makes errors.Is(err, ErrLagged) hold.
func (e *LaggedError) Unwrap() error { return ErrLagged }

// Name returns the durable name ("" for an anonymous subscriber).
func (s *Subscriber[T]) Name() (name string) {
	if !s.durable || s.closedH.Load() || s.b.fg.Faulted() {
		return ""
	}
	defer s.b.fg.Guard(nil, "name", s.b.fg.Enable())
	return s.rec.readName()
}

// Cursor returns the number of the next message this subscriber reads.
func (s *Subscriber[T]) Cursor() uint64 { return s.cursor }

// Lag returns how many published messages this subscriber has not read.
// It is 0 after Close or a memory fault.
func (s *Subscriber[T]) Lag() (n uint64) {
	if s.closedH.Load() || s.b.fg.Faulted() {
		return 0
	}
	defer s.b.fg.Guard(nil, "lag", s.b.fg.Enable())
	t := s.b.ctl.tail.Load()
	if t < s.cursor {
		return 0
	}
	return t - s.cursor
}

// refresh loads the closed flag and the tail, validates the tail against
// the cursor and reports whether a message is there.
func (s *Subscriber[T]) refresh() (bool, error) {
	if s.closedH.Load() {
		return true, nil
	}
	closed := s.b.ctl.closed.Load() != 0
	t := s.b.ctl.tail.Load()
	c := s.cursor
	if t < c || (s.b.slots != nil && t-c > s.b.cap) {
		return false, fmt.Errorf("%w: tail %d, cursor %d, capacity %d", ErrCorrupt, t, c, s.b.cap)
	}
	s.tailCache = t
	s.sawClosed = closed
	return t != c, nil
}

// avail waits (if ctx is not nil) until a message is there, and returns
// nil, or ErrEmpty (ctx nil), ErrClosed, ctx's error or a corruption.
//
// After a memory fault it returns the handle's fault error. The reload of
// the tail is per-item work (a subscriber keeping up reloads it for every
// message) and is guarded only on a WithFaultGuard handle; the wait runs
// under the fault guard always.
func (s *Subscriber[T]) avail(ctx context.Context) error {
	if err := s.b.fg.Err(); err != nil {
		return err
	}
	if s.state != roleHeld {
		return ErrClosed
	}
	for s.cursor == s.tailCache {
		ok, err := s.refresh()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if s.sawClosed {
			return ErrClosed
		}
		if ctx == nil {
			return ErrEmpty
		}
		if err := s.waitData(ctx); err != nil {
			return err
		}
		if s.state != roleHeld {
			return ErrClosed
		}
	}
	return nil
}

// waitData waits until a message is there, under the fault guard.
func (s *Subscriber[T]) waitData(ctx context.Context) (err error) {
	defer s.b.fg.Guard(&err, "next", s.b.fg.Enable())
	s.cerr = nil
	err = s.b.ctl.notEmpty.WaitPoll(ctx, s.b.policy, s.dataReady, subRecheck, shmsync.LookAgain)
	if s.cerr != nil {
		err, s.cerr = s.cerr, nil
	}
	return err
}

// subRecheck bounds how long a parked subscriber sleeps without a wake
// before it looks at the tail again. A publisher always wakes it; the
// bound is for what never notifies: a segment truncated under it (the
// look then faults, and Next reports it instead of sleeping on forever).
const subRecheck = 100 * time.Millisecond

// advance stores the new cursor and wakes a Block publisher waiting for it.
func (s *Subscriber[T]) advance(next uint64) {
	old := s.cursor
	s.cursor = next
	s.rec.cursor.Store(next)
	ctl := s.b.ctl
	if s.b.slots != nil && ctl.notFull.Waiting() && ctl.notFullAt.Load()-old-1 < next-old {
		ctl.notFull.Notify()
	}
}

// lagged reports a lap: move the cursor to the oldest message the
// publisher cannot be writing, count, and return the error.
func (s *Subscriber[T]) lagged() error {
	c := s.cursor
	t := s.b.ctl.tail.Load()
	if t < c+s.b.cap {
		return fmt.Errorf("%w: slot of message %d overwritten but tail is %d (capacity %d)", ErrCorrupt, c, t, s.b.cap)
	}
	next := t - s.b.cap + 1
	s.tailCache = t
	s.advance(next)
	s.rec.lapped.Add(1)
	s.rec.missed.Add(next - c)
	return &LaggedError{Missed: next - c}
}

// read copies message s.cursor (known published) into *v and advances.
func (s *Subscriber[T]) read(v *T) error {
	c := s.cursor
	mask := s.b.cap - 1
	if s.b.slots != nil {
		*v = s.b.slots[c&mask]
		s.advance(c + 1)
		return nil
	}
	if s.tailCache-c > s.b.cap {
		return s.lagged()
	}
	sl := &s.b.oslots[c&mask]
	if sl.seq.Load() == c+1 {
		loadSlot(sl, v)
		if sl.seq.Load() == c+1 {
			s.advance(c + 1)
			return nil
		}
	}
	var zero T
	*v = zero
	return s.lagged()
}

func (s *Subscriber[T]) takePending() error {
	m := s.pending
	s.pending = 0
	return &LaggedError{Missed: m}
}

// WaitSource makes a Subscriber a sync.Waitable: a WaitSet reports it when
// a message is there (or the bus is closed for writes).
func (s *Subscriber[T]) WaitSource() (*shmsync.Notifier, func() bool) {
	ctl, rec, fg := s.b.ctl, s.rec, &s.b.fg
	return &ctl.notEmpty, func() (ok bool) {
		if s.closedH.Load() || fg.Faulted() {
			return true
		}
		// A fault here is recorded (the next call reports it) and makes
		// the source ready, so the WaitSet returns.
		ok = true
		defer fg.Guard(nil, "wait", fg.Enable())
		return ctl.closed.Load() != 0 || ctl.tail.Load() != rec.cursor.Load()
	}
}

// Close releases the subscriber's record at once: an anonymous one is
// freed, a durable one keeps its name and cursor for a later Subscribe. A
// Block publisher no longer waits for it. Calling it again is a no-op.
func (s *Subscriber[T]) Close() error {
	b := s.b
	b.subsMu.Lock()
	_, mine := b.subs[s]
	delete(b.subs, s)
	b.subsMu.Unlock()
	if !mine {
		return nil
	}
	return s.closeLocked()
}

func (s *Subscriber[T]) closeLocked() error {
	if s.state != roleHeld {
		return nil
	}
	s.state = roleClosed
	s.closedH.Store(true)
	s.b.leave(s.idx, s.durable)
	s.dataReady = nil
	return nil
}
