package shmbus

import (
	"context"
)

// releasePublisher gives up the publisher role, under the fault guard: a
// role word lost with truncated pages is simply forgotten.
func (b *Bus[T]) releasePublisher() {
	defer b.fg.Guard(nil, "close", b.fg.Enable())
	b.releaseWord(&b.ctl.publisher, publisherSlot)
}

// ---- publisher ----

// Publish appends v for every subscriber. In Block mode it waits while the
// slowest live subscriber is a capacity behind, until there is room or ctx
// is done; in Overwrite mode it never waits. The first call claims the
// publisher role. It fails with ErrClosed after CloseWrites.
func (b *Bus[T]) Publish(ctx context.Context, v T) (err error) {
	if b.fg.GuardsEachCall() {
		defer b.fg.Guard(&err, "publish", b.fg.Enable())
	}
	if b.pstate != roleHeld || b.fg.Faulted() {
		if err := b.claimPublisher(); err != nil {
			return b.errf("publish", err)
		}
	}
	t := b.tail
	if b.slots != nil {
		if t >= b.limit || b.ctl.gen.Load() != b.gen {
			if err := b.waitRoom(ctx); err != nil {
				return b.errf("publish", err)
			}
		}
	}
	b.put(t, &v)
	return nil
}

// TryPublish is Publish that never waits: in Block mode it fails with
// ErrFull when the slowest live subscriber is a capacity behind.
func (b *Bus[T]) TryPublish(v T) (err error) {
	if b.fg.GuardsEachCall() {
		defer b.fg.Guard(&err, "publish", b.fg.Enable())
	}
	if b.pstate != roleHeld || b.fg.Faulted() {
		if err := b.claimPublisher(); err != nil {
			return b.errf("publish", err)
		}
	}
	t := b.tail
	if b.slots != nil {
		if t >= b.limit || b.ctl.gen.Load() != b.gen {
			ok, err := b.rescanGuarded()
			if err != nil {
				return b.errf("publish", err)
			}
			if !ok {
				return ErrFull
			}
		}
	}
	b.put(t, &v)
	return nil
}

// put stores v at position t, which the caller found room for, and
// publishes it: the slot (Overwrite: with its sequence word), the tail,
// and a wake for parked subscribers.
func (b *Bus[T]) put(t uint64, v *T) {
	if b.slots != nil {
		b.slots[t&(b.cap-1)] = *v
	} else {
		storeSlot(&b.oslots[t&(b.cap-1)], t+1, v)
	}
	b.tail = t + 1
	b.ctl.tail.Store(t + 1)
	b.ctl.notEmpty.Notify()
}

// CloseWrites marks the bus closed for writes: subscribers read what is
// left, then get ErrClosed; Publish fails with ErrClosed. It claims the
// publisher role if this handle does not hold it.
func (b *Bus[T]) CloseWrites() (err error) {
	if b.pstate != roleHeld || b.fg.Faulted() {
		if err := b.claimPublisher(); err != nil {
			return b.errf("close writes", err)
		}
	}
	defer b.fg.Guard(&err, "close writes", b.fg.Enable())
	b.ctl.closed.Store(1)
	b.ctl.notEmpty.Notify()
	b.pstate = roleClosed
	b.releaseWord(&b.ctl.publisher, publisherSlot)
	return nil
}

// Published returns the number of messages ever published.
// It is 0 after Close or a memory fault.
func (b *Bus[T]) Published() (n uint64) {
	if b.closed.Load() || b.fg.Faulted() {
		return 0
	}
	defer b.fg.Guard(nil, "published", b.fg.Enable())
	return b.ctl.tail.Load()
}
