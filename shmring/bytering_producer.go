package shmring

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/layout"
)

// ---- producer ----

// plan computes where a record of n payload bytes goes at the current tail:
// padding before it (0, or up to the region end) and the total bytes the
// tail will advance.
func (r *ByteRing) plan(n int) (pad, total uint64) {
	need := align8(recordHeader + uint64(n))
	off := r.tail & r.mask
	if contig := r.cap - off; need > contig {
		pad = contig
	}
	return pad, pad + need
}

// Reserve returns n bytes of shared memory, contiguous, for the producer to
// fill in place; Commit(k) then publishes a record of the first k bytes. It
// returns ErrFull (wrapped) when there is no room now; it never blocks (see
// ReserveWait). n larger than MaxRecord fails with ErrTooLarge.
//
// The slice aliases shared memory and is valid for writing until the next
// Commit, Reserve, Write or Close on this handle. Writing through it after
// Commit races with the consumer (item data may be torn; memory safety
// holds while mapped). The caller's touches of the slice are not under the
// fault guard (see "Truncated segments" in the package doc). A producer
// killed before Commit leaves nothing visible.
func (r *ByteRing) Reserve(n int) ([]byte, error) {
	if r.fg.GuardsEachCall() {
		return r.guardedReserve(n)
	}
	return r.doReserve(n)
}

func (r *ByteRing) guardedReserve(n int) (b []byte, err error) {
	defer r.guardP(&err, "reserve", r.fg.Enable())
	return r.doReserve(n)
}

func (r *ByteRing) doReserve(n int) ([]byte, error) {
	if r.pstate != roleHeld {
		if err := r.claimProducerBytes(); err != nil {
			return nil, err
		}
	}
	r.resvOK = false
	if n < 0 || n > r.MaxRecord() {
		return nil, layout.WrapOp("shmring", "reserve", r.name, fmt.Errorf("%w: record of %d bytes, at most %d fit a %d-byte ring", ErrTooLarge, n, r.MaxRecord(), r.cap))
	}
	pad, total := r.plan(n)
	if r.cap-(r.tail-r.headCache) < total {
		ok, err := r.refreshHeadBytes(total)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, layout.WrapOp("shmring", "reserve", r.name, fmt.Errorf("%w: %d bytes needed, %d free", ErrFull, total, r.cap-(r.tail-r.headCache)))
		}
	}
	off := r.tail & r.mask
	if pad > 0 {
		// Invisible until Commit moves the tail past it.
		putHeader(r.data[off:], uint32(pad-recordHeader), tagPadding)
		off = 0
	}
	r.resvOK, r.resvPad, r.resvOff, r.resvSize = true, pad, off, n
	if crashpoint.Enabled {
		crashpoint.Hit("ring.reserved")
	}
	start := off + recordHeader
	return r.data[start : start+uint64(n) : start+uint64(n)], nil
}

// ReserveWait is Reserve that blocks while the ring lacks room, until ctx
// is done.
func (r *ByteRing) ReserveWait(ctx context.Context, n int) ([]byte, error) {
	if r.fg.GuardsEachCall() {
		return r.guardedReserveWait(ctx, n)
	}
	return r.doReserveWait(ctx, n)
}

func (r *ByteRing) guardedReserveWait(ctx context.Context, n int) (b []byte, err error) {
	defer r.guardP(&err, "reserve", r.fg.Enable())
	return r.doReserveWait(ctx, n)
}

func (r *ByteRing) doReserveWait(ctx context.Context, n int) ([]byte, error) {
	for {
		b, err := r.doReserve(n)
		if err == nil || !isFull(err) {
			return b, err
		}
		_, total := r.plan(n)
		if err := r.waitRoom(ctx, total); err != nil {
			return nil, err
		}
	}
}

// Commit publishes the first k bytes of the last Reserve as one record
// (k may be less than reserved, not more) and wakes a parked consumer.
func (r *ByteRing) Commit(k int) error {
	if r.fg.GuardsEachCall() {
		return r.guardedCommit(k)
	}
	return r.doCommit(k)
}

func (r *ByteRing) guardedCommit(k int) (err error) {
	defer r.guardP(&err, "commit", r.fg.Enable())
	return r.doCommit(k)
}

func (r *ByteRing) doCommit(k int) error {
	if r.pstate != roleHeld {
		if err := r.claimProducerBytes(); err != nil {
			return err
		}
	}
	if !r.resvOK || k < 0 || k > r.resvSize {
		return layout.WrapOp("shmring", "commit", r.name, fmt.Errorf("%w: Commit(%d) with %d bytes reserved (reservation %v)", ErrUsage, k, r.resvSize, r.resvOK))
	}
	r.resvOK = false
	putHeader(r.data[r.resvOff:], uint32(k), tagRecord)
	if crashpoint.Enabled {
		crashpoint.Hit("ring.committing")
	}
	r.publishTail(r.tail + r.resvPad + align8(recordHeader+uint64(k)))
	return nil
}

// Write copies p into the ring as one record, blocking while there is no
// room until ctx is done.
func (r *ByteRing) Write(ctx context.Context, p []byte) error {
	if r.fg.GuardsEachCall() {
		return r.guardedWrite(ctx, p)
	}
	return r.doWrite(ctx, p)
}

func (r *ByteRing) guardedWrite(ctx context.Context, p []byte) (err error) {
	defer r.guardP(&err, "write", r.fg.Enable())
	return r.doWrite(ctx, p)
}

func (r *ByteRing) doWrite(ctx context.Context, p []byte) error {
	b, err := r.doReserveWait(ctx, len(p))
	if err != nil {
		return err
	}
	copy(b, p)
	return r.doCommit(len(p))
}

// TryWrite copies p into the ring as one record if there is room now
// (else an error wrapping ErrFull).
func (r *ByteRing) TryWrite(p []byte) error {
	if r.fg.GuardsEachCall() {
		return r.guardedTryWrite(p)
	}
	return r.doTryWrite(p)
}

func (r *ByteRing) guardedTryWrite(p []byte) (err error) {
	defer r.guardP(&err, "write", r.fg.Enable())
	return r.doTryWrite(p)
}

func (r *ByteRing) doTryWrite(p []byte) error {
	b, err := r.doReserve(len(p))
	if err != nil {
		return err
	}
	copy(b, p)
	return r.doCommit(len(p))
}

func (r *ByteRing) refreshHeadBytes(total uint64) (bool, error) {
	ok, err := r.refreshHeadGuarded(total)
	if err == nil {
		err = r.checkAligned(r.headCache, "head")
	}
	return ok, err
}

func (r *ByteRing) claimProducerBytes() error {
	if err := r.claimProducer(); err != nil {
		return err
	}
	if err := r.checkAligned(r.tail, "tail"); err != nil {
		r.release(roleProducer)
		r.pstate = roleNone
		return err
	}
	return nil
}

func putHeader(b []byte, n, tag uint32) {
	binary.LittleEndian.PutUint64(b, uint64(n)|uint64(tag)<<32)
}

func isFull(err error) bool { return errors.Is(err, ErrFull) }
