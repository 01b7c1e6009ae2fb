package shmring

import (
	"context"
	"fmt"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/layout"
)

// ---- producer ----

// Push appends v, blocking while the ring is full until there is room or
// ctx is done. It claims the producer role on first use. A pending Claim is
// dropped (its slots were not published).
func (r *Ring[T]) Push(ctx context.Context, v T) error {
	// Small enough to inline, and the rest takes v by pointer: a large T
	// is copied once into the caller's argument and once into the slot
	// (passing it on by value cost a copy per call level).
	if r.fg.GuardsEachCall() {
		return r.guardedPush(ctx, &v)
	}
	return r.doPush(ctx, &v)
}

func (r *Ring[T]) guardedPush(ctx context.Context, v *T) (err error) {
	defer r.guardP(&err, "push", r.fg.Enable())
	return r.doPush(ctx, v)
}

func (r *Ring[T]) doPush(ctx context.Context, v *T) error {
	if r.pstate != roleHeld {
		if err := r.claimProducer(); err != nil {
			return err
		}
	}
	t := r.tail
	if t-r.headCache >= r.cap {
		if err := r.waitRoom(ctx, 1); err != nil {
			return err
		}
	}
	r.slots[t&r.mask] = *v
	r.claimed = 0
	r.publishTail(t + 1)
	return nil
}

// TryPush appends v if there is room now and reports whether it did. It
// reports false when the ring is full, and also when the producer role
// cannot be claimed, the ring is closed, or the cursors are corrupt (Push
// reports which).
func (r *Ring[T]) TryPush(v T) bool {
	if r.fg.GuardsEachCall() {
		return r.guardedTryPush(&v)
	}
	return r.doTryPush(&v)
}

func (r *Ring[T]) guardedTryPush(v *T) (ok bool) {
	defer r.guardP(nil, "push", r.fg.Enable())
	return r.doTryPush(v)
}

func (r *Ring[T]) doTryPush(v *T) bool {
	if r.pstate != roleHeld {
		if r.claimProducer() != nil {
			return false
		}
	}
	t := r.tail
	if t-r.headCache >= r.cap {
		if ok, err := r.refreshHeadGuarded(1); !ok || err != nil {
			return false
		}
	}
	r.slots[t&r.mask] = *v
	r.claimed = 0
	r.publishTail(t + 1)
	return true
}

// Claim returns up to n free slots, contiguous in shared memory, for the
// producer to fill in place; Publish(k) then makes the first k visible. It
// may return fewer than n slots: when the ring is nearly full, or at the
// wrap (call Claim again after Publish for the rest). It returns an empty
// slice (and nil) when the ring is full; it never blocks (see ClaimWait).
//
// The slice aliases shared memory. It is valid for writing until the next
// Publish, Claim, Push or Close on this handle. The consumer cannot see or
// touch the claimed slots until they are published; slots claimed but not
// published are reused by the next Claim. Writing through the slice after
// Publish races with the consumer (it may be reading or, after it advanced,
// the producer's next lap may reuse the slot): that corrupts item data but
// never memory safety while the segment is mapped. After Close the memory
// is unmapped and touching the slice faults. The caller's touches of the
// slice are not under the fault guard (see "Truncated segments").
//
// A producer SIGKILLed between Claim and Publish leaves nothing visible.
func (r *Ring[T]) Claim(n int) ([]T, error) {
	if r.fg.GuardsEachCall() {
		return r.guardedClaim(n)
	}
	return r.doClaim(n)
}

func (r *Ring[T]) guardedClaim(n int) (s []T, err error) {
	defer r.guardP(&err, "claim", r.fg.Enable())
	return r.doClaim(n)
}

func (r *Ring[T]) doClaim(n int) ([]T, error) {
	if r.pstate != roleHeld {
		if err := r.claimProducer(); err != nil {
			return nil, err
		}
	}
	if n <= 0 {
		r.claimed = 0
		return r.slots[:0], nil
	}
	t := r.tail
	free := r.cap - (t - r.headCache)
	if free < uint64(n) {
		if _, err := r.refreshHeadGuarded(uint64(n)); err != nil {
			r.claimed = 0
			return nil, err
		}
		free = r.cap - (t - r.headCache)
	}
	i := t & r.mask
	k := min(uint64(n), free, r.cap-i)
	r.claimed = k
	if crashpoint.Enabled {
		crashpoint.Hit("ring.claimed")
	}
	return r.slots[i : i+k : i+k], nil
}

// ClaimWait is Claim that blocks until at least one slot is free (or ctx is
// done). It returns at least one slot on success.
func (r *Ring[T]) ClaimWait(ctx context.Context, n int) ([]T, error) {
	if r.fg.GuardsEachCall() {
		return r.guardedClaimWait(ctx, n)
	}
	return r.doClaimWait(ctx, n)
}

func (r *Ring[T]) guardedClaimWait(ctx context.Context, n int) (s []T, err error) {
	defer r.guardP(&err, "claim", r.fg.Enable())
	return r.doClaimWait(ctx, n)
}

func (r *Ring[T]) doClaimWait(ctx context.Context, n int) ([]T, error) {
	s, err := r.doClaim(n)
	if err != nil || len(s) > 0 || n <= 0 {
		return s, err
	}
	if err := r.waitRoom(ctx, 1); err != nil {
		return nil, err
	}
	return r.doClaim(n)
}

// Publish makes the first k slots of the last Claim visible to the consumer
// (one atomic store) and wakes it if it is parked. The rest of the claim,
// if any, is dropped. k must not exceed the claimed count.
func (r *Ring[T]) Publish(k int) error {
	if r.fg.GuardsEachCall() {
		return r.guardedPublish(k)
	}
	return r.doPublish(k)
}

func (r *Ring[T]) guardedPublish(k int) (err error) {
	defer r.guardP(&err, "publish", r.fg.Enable())
	return r.doPublish(k)
}

func (r *Ring[T]) doPublish(k int) error {
	if r.pstate != roleHeld {
		if err := r.claimProducer(); err != nil {
			return err
		}
	}
	if k < 0 || uint64(k) > r.claimed {
		return layout.WrapOp("shmring", "publish", r.name, fmt.Errorf("%w: Publish(%d) with %d slots claimed", ErrUsage, k, r.claimed))
	}
	r.claimed = 0
	if k == 0 {
		return nil
	}
	if crashpoint.Enabled {
		crashpoint.Hit("ring.publishing")
	}
	r.publishTail(r.tail + uint64(k))
	return nil
}

// PushBatch appends all of items, in order, blocking while the ring is full
// until everything is in, ctx is done, or an error occurs. It returns how
// many items were pushed (all of them when err is nil). Items become
// visible in contiguous chunks as they are copied in.
func (r *Ring[T]) PushBatch(ctx context.Context, items []T) (n int, err error) {
	defer r.guardP(&err, "push", r.fg.Enable())
	return r.doPushBatch(ctx, items)
}

func (r *Ring[T]) doPushBatch(ctx context.Context, items []T) (int, error) {
	done := 0
	for done < len(items) {
		s, err := r.doClaim(len(items) - done)
		if err != nil {
			return done, err
		}
		if len(s) == 0 {
			if err := r.waitRoom(ctx, 1); err != nil {
				return done, err
			}
			continue
		}
		copy(s, items[done:])
		if err := r.doPublish(len(s)); err != nil {
			return done, err
		}
		done += len(s)
	}
	return done, nil
}
