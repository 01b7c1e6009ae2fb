package shmbus

import (
	"context"
	"fmt"
)

// Next returns the next message, waiting until one is published, the bus
// is closed for writes and drained (ErrClosed), or ctx is done. The cursor
// advances before Next returns. A lapped subscriber gets an error wrapping
// ErrLagged (a *LaggedError saying how many it missed), and the following
// Next continues from the oldest retained message.
func (s *Subscriber[T]) Next(ctx context.Context) (v T, err error) {
	if s.b.fg.GuardsEachCall() {
		defer s.b.fg.Guard(&err, "next", s.b.fg.Enable())
	}
	if s.pending != 0 {
		return v, s.b.errf("next", s.takePending())
	}
	if err := s.avail(ctx); err != nil {
		return v, s.b.errf("next", err)
	}
	s.peeked = 0
	if err := s.read(&v); err != nil {
		return v, s.b.errf("next", err)
	}
	return v, nil
}

// TryNext is Next that never waits: ErrEmpty when nothing is there.
func (s *Subscriber[T]) TryNext() (v T, err error) {
	if s.b.fg.GuardsEachCall() {
		defer s.b.fg.Guard(&err, "next", s.b.fg.Enable())
	}
	if s.pending != 0 {
		return v, s.b.errf("next", s.takePending())
	}
	if err := s.avail(nil); err != nil {
		if err == ErrEmpty {
			return v, ErrEmpty
		}
		return v, s.b.errf("next", err)
	}
	s.peeked = 0
	if err := s.read(&v); err != nil {
		return v, s.b.errf("next", err)
	}
	return v, nil
}

// NextBatch waits until at least one message is there (as Next), then
// copies up to len(buf) messages into buf and returns how many. The cursor
// advances past them before it returns. In Overwrite mode a lap found
// after the first message ends the batch early; the next call reports it.
//
// NextBatch runs under the fault guard whatever the options.
func (s *Subscriber[T]) NextBatch(ctx context.Context, buf []T) (n int, err error) {
	if len(buf) == 0 {
		return 0, nil
	}
	if err := s.b.fg.Err(); err != nil {
		return 0, err
	}
	defer s.b.fg.Guard(&err, "next", s.b.fg.Enable())
	if s.pending != 0 {
		return 0, s.b.errf("next", s.takePending())
	}
	if err := s.avail(ctx); err != nil {
		return 0, s.b.errf("next", err)
	}
	s.peeked = 0
	c := s.cursor
	mask := s.b.cap - 1
	m := min(uint64(len(buf)), s.tailCache-c)
	if s.b.slots != nil {
		i := c & mask
		k := copy(buf[:m], s.b.slots[i:min(i+m, s.b.cap)])
		copy(buf[k:m], s.b.slots[:m-uint64(k)])
		s.advance(c + m)
		return int(m), nil
	}
	if s.tailCache-c > s.b.cap {
		return 0, s.b.errf("next", s.lagged())
	}
	got := 0
	for j := c; j < c+m; j++ {
		sl := &s.b.oslots[j&mask]
		if sl.seq.Load() != j+1 {
			break
		}
		loadSlot(sl, &buf[got])
		if sl.seq.Load() != j+1 {
			break
		}
		got++
	}
	if got == 0 {
		return 0, s.b.errf("next", s.lagged())
	}
	s.advance(c + uint64(got))
	return got, nil
}

// Peek returns up to n published messages at the cursor, in place in
// shared memory (Block mode only), without consuming them; Release(k)
// then consumes the first k. It may return fewer than n (at the wrap) and
// an empty slice when nothing is there; it never waits (see PeekWait).
// The publisher does not overwrite the peeked slots until they are
// released; the slice must not be used after Release, Next or Close. A
// subscriber SIGKILLed between Peek and Release sees the messages again
// when its durable successor resumes.
func (s *Subscriber[T]) Peek(n int) (p []T, err error) {
	if s.b.fg.GuardsEachCall() {
		defer s.b.fg.Guard(&err, "peek", s.b.fg.Enable())
	}
	if s.b.slots == nil {
		return nil, s.b.errf("peek", fmt.Errorf("%w: Peek on an Overwrite bus (the publisher may overwrite any slot); use Next", ErrUsage))
	}
	if s.pending != 0 {
		return nil, s.b.errf("peek", s.takePending())
	}
	if err := s.avail(nil); err != nil {
		if err == ErrEmpty {
			s.peeked = 0
			return s.b.slots[:0], nil
		}
		return nil, s.b.errf("peek", err)
	}
	if n <= 0 {
		s.peeked = 0
		return s.b.slots[:0], nil
	}
	c := s.cursor
	i := c & (s.b.cap - 1)
	k := min(uint64(n), s.tailCache-c, s.b.cap-i)
	s.peeked = k
	return s.b.slots[i : i+k : i+k], nil
}

// PeekWait is Peek that waits until at least one message is there (or the
// bus is closed and drained: ErrClosed, or ctx is done).
func (s *Subscriber[T]) PeekWait(ctx context.Context, n int) ([]T, error) {
	if s.b.slots != nil && s.pending == 0 {
		if err := s.avail(ctx); err != nil {
			return nil, s.b.errf("peek", err)
		}
	}
	return s.Peek(n)
}

// Release consumes the first k messages of the last Peek.
func (s *Subscriber[T]) Release(k int) (err error) {
	if s.b.fg.GuardsEachCall() {
		defer s.b.fg.Guard(&err, "release", s.b.fg.Enable())
	}
	if err := s.b.fg.Err(); err != nil {
		return err
	}
	if s.state != roleHeld {
		return s.b.errf("release", ErrClosed)
	}
	if k < 0 || uint64(k) > s.peeked {
		return s.b.errf("release", fmt.Errorf("%w: Release(%d) with %d messages peeked", ErrUsage, k, s.peeked))
	}
	s.peeked = 0
	if k > 0 {
		s.advance(s.cursor + uint64(k))
	}
	return nil
}
