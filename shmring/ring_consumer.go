package shmring

import (
	"context"
	"fmt"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/layout"
)

// ---- consumer ----

// Pop removes and returns the oldest item, blocking while the ring is empty
// until an item arrives or ctx is done. It claims the consumer role on
// first use. A pending Peek is dropped. The item is released before Pop
// returns: a consumer killed after Pop returns loses that item (use Peek and
// Advance for at-least-once delivery).
func (r *Ring[T]) Pop(ctx context.Context) (v T, err error) {
	// Small enough to inline; the item is copied from the slot straight
	// into v (returning it by value through each call level cost a copy
	// per level, which a large T feels).
	if r.fg.GuardsEachCall() {
		err = r.guardedPop(ctx, &v)
	} else {
		err = r.doPop(ctx, &v)
	}
	return v, err
}

// guardedPop copies the item into a local first: a fault in the middle of
// the copy from the slot must not hand back half an item, and only a
// complete one reaches *v.
func (r *Ring[T]) guardedPop(ctx context.Context, v *T) (err error) {
	defer r.guardC(&err, "pop", r.fg.Enable())
	var w T
	if err = r.doPop(ctx, &w); err == nil {
		*v = w
	}
	return err
}

func (r *Ring[T]) doPop(ctx context.Context, v *T) error {
	if r.cstate != roleHeld {
		if err := r.claimConsumer(); err != nil {
			return err
		}
	}
	h := r.head
	if h == r.tailCache {
		if err := r.waitData(ctx, h); err != nil {
			return err
		}
	}
	*v = r.slots[h&r.mask]
	r.peeked = 0
	r.releaseHead(h + 1)
	return nil
}

// TryPop removes and returns the oldest item if there is one. It reports
// false when the ring is empty, and also when the consumer role cannot be
// claimed, the ring is closed, or the cursors are corrupt (Pop reports
// which).
func (r *Ring[T]) TryPop() (v T, ok bool) {
	if r.fg.GuardsEachCall() {
		ok = r.guardedTryPop(&v)
	} else {
		ok = r.doTryPop(&v)
	}
	return v, ok
}

// guardedTryPop copies into a local first, as guardedPop does.
func (r *Ring[T]) guardedTryPop(v *T) (ok bool) {
	defer r.guardC(nil, "pop", r.fg.Enable())
	var w T
	if ok = r.doTryPop(&w); ok {
		*v = w
	}
	return ok
}

func (r *Ring[T]) doTryPop(v *T) bool {
	if r.cstate != roleHeld {
		if r.claimConsumer() != nil {
			return false
		}
	}
	h := r.head
	if h == r.tailCache {
		if ok, err := r.refreshTailGuarded(h); !ok || err != nil {
			return false
		}
	}
	*v = r.slots[h&r.mask]
	r.peeked = 0
	r.releaseHead(h + 1)
	return true
}

// Peek returns up to n of the oldest published items, contiguous in shared
// memory, without removing them; Advance(k) then releases the first k. It
// may return fewer than n (at the wrap, call Peek again after Advance), and
// an empty slice when the ring is empty; it never blocks (see PeekWait).
// Calling Peek again without Advance returns the same items (and possibly
// more).
//
// The slice aliases shared memory and is valid until the next Advance, Pop,
// TryPop, PopBatch or Close on this handle. The producer does not write
// peeked slots until they are advanced. Reading through the slice after
// Advance races with the producer, which may already be overwriting the
// slots with new items: the data read is then garbage, but memory safety
// holds while the segment is mapped. After Close the memory is unmapped
// and touching the slice faults. The caller's touches of the slice are not
// under the fault guard (see "Truncated segments").
//
// A consumer SIGKILLed between Peek and Advance leaves the items in the
// ring: whoever consumes next sees them again.
func (r *Ring[T]) Peek(n int) ([]T, error) {
	if r.fg.GuardsEachCall() {
		return r.guardedPeek(n)
	}
	return r.doPeek(n)
}

func (r *Ring[T]) guardedPeek(n int) (s []T, err error) {
	defer r.guardC(&err, "peek", r.fg.Enable())
	return r.doPeek(n)
}

func (r *Ring[T]) doPeek(n int) ([]T, error) {
	if r.cstate != roleHeld {
		if err := r.claimConsumer(); err != nil {
			return nil, err
		}
	}
	if n <= 0 {
		r.peeked = 0
		return r.slots[:0], nil
	}
	h := r.head
	avail := r.tailCache - h
	if avail < uint64(n) {
		if _, err := r.refreshTailGuarded(h); err != nil {
			r.peeked = 0
			return nil, err
		}
		avail = r.tailCache - h
	}
	i := h & r.mask
	k := min(uint64(n), avail, r.cap-i)
	r.peeked = k
	if crashpoint.Enabled {
		crashpoint.Hit("ring.peeked")
	}
	return r.slots[i : i+k : i+k], nil
}

// PeekWait is Peek that blocks until at least one item is available (or
// ctx is done). It returns at least one item on success.
func (r *Ring[T]) PeekWait(ctx context.Context, n int) ([]T, error) {
	if r.fg.GuardsEachCall() {
		return r.guardedPeekWait(ctx, n)
	}
	return r.doPeekWait(ctx, n)
}

func (r *Ring[T]) guardedPeekWait(ctx context.Context, n int) (s []T, err error) {
	defer r.guardC(&err, "peek", r.fg.Enable())
	return r.doPeekWait(ctx, n)
}

func (r *Ring[T]) doPeekWait(ctx context.Context, n int) ([]T, error) {
	s, err := r.doPeek(n)
	if err != nil || len(s) > 0 || n <= 0 {
		return s, err
	}
	if err := r.waitData(ctx, r.head); err != nil {
		return nil, err
	}
	return r.doPeek(n)
}

// Advance releases the first k items of the last Peek (one atomic store)
// and wakes the producer if it is parked. k must not exceed the peeked
// count. The remaining peeked items stay in the ring; Peek returns them
// again.
func (r *Ring[T]) Advance(k int) error {
	if r.fg.GuardsEachCall() {
		return r.guardedAdvance(k)
	}
	return r.doAdvance(k)
}

func (r *Ring[T]) guardedAdvance(k int) (err error) {
	defer r.guardC(&err, "advance", r.fg.Enable())
	return r.doAdvance(k)
}

func (r *Ring[T]) doAdvance(k int) error {
	if r.cstate != roleHeld {
		if err := r.claimConsumer(); err != nil {
			return err
		}
	}
	if k < 0 || uint64(k) > r.peeked {
		return layout.WrapOp("shmring", "advance", r.name, fmt.Errorf("%w: Advance(%d) with %d items peeked", ErrUsage, k, r.peeked))
	}
	r.peeked = 0
	if k == 0 {
		return nil
	}
	if crashpoint.Enabled {
		crashpoint.Hit("ring.advancing")
	}
	r.releaseHead(r.head + uint64(k))
	return nil
}

// PopBatch blocks until at least one item is available (or ctx is done),
// then removes up to len(buf) items into buf and returns how many. Items are
// released before PopBatch returns (see Pop about crashes).
func (r *Ring[T]) PopBatch(ctx context.Context, buf []T) (n int, err error) {
	defer r.guardC(&err, "pop", r.fg.Enable())
	return r.doPopBatch(ctx, buf)
}

func (r *Ring[T]) doPopBatch(ctx context.Context, buf []T) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	s, err := r.doPeekWait(ctx, len(buf))
	if err != nil {
		return 0, err
	}
	n := copy(buf, s)
	if n < len(buf) && uint64(n) == r.cap-(r.head&r.mask) {
		// The batch wraps: take the part at the start of the slots too,
		// and release both with one store.
		h2 := r.head + uint64(n)
		avail := r.tailCache - h2
		n2 := min(uint64(len(buf)-n), avail)
		n += copy(buf[n:], r.slots[:n2])
	}
	r.peeked = 0
	if crashpoint.Enabled {
		crashpoint.Hit("ring.advancing")
	}
	r.releaseHead(r.head + uint64(n))
	return n, nil
}
