package shmring

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/layout"
)

// ---- consumer ----

// Read returns the next record's payload, aliasing shared memory, or an
// error wrapping ErrEmpty when there is none now; it never blocks (see
// ReadWait). Successive Reads return successive records; Release frees all
// records read so far.
//
// The slice is valid until the next Release, ReadInto or Close on this
// handle. The producer does not overwrite records before they are released;
// reading the slice after Release races with the producer (torn data,
// memory safety holds while mapped). The caller's touches of the slice are
// not under the fault guard (see "Truncated segments" in the package doc).
// A consumer killed before Release sees the records it had read again when
// it restarts.
//
// The record's length is read from shared memory once, into a local,
// together with its tag (one 8-byte load); only that copy is validated
// and used, so a peer that changes the length after the check cannot
// widen the returned slice.
//
// A record header that fails validation (unknown tag, length beyond
// MaxRecord or past the published tail, padding that does not end at the
// region end) gives an error wrapping ErrCorrupt.
func (r *ByteRing) Read() ([]byte, error) {
	if r.fg.GuardsEachCall() {
		return r.guardedRead()
	}
	return r.doRead()
}

func (r *ByteRing) guardedRead() (b []byte, err error) {
	defer r.guardC(&err, "read", r.fg.Enable())
	return r.doRead()
}

func (r *ByteRing) doRead() ([]byte, error) {
	if r.cstate != roleHeld {
		if err := r.claimConsumerBytes(); err != nil {
			return nil, err
		}
	}
	for {
		pos := r.readEnd
		if pos == r.tailCache {
			ok, err := r.refreshTailBytes(pos)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, layout.WrapOp("shmring", "read", r.name, ErrEmpty)
			}
		}
		off := pos & r.mask // 8-aligned: cursors are validated as such
		hdr := binary.LittleEndian.Uint64(r.data[off : off+recordHeader])
		n, tag := uint64(uint32(hdr)), uint32(hdr>>32)
		var span uint64
		switch tag {
		case tagRecord:
			if n > uint64(r.MaxRecord()) || off+recordHeader+n > r.cap {
				return nil, r.badRecord(pos, "record length", n)
			}
			span = align8(recordHeader + n)
		case tagPadding:
			if off+recordHeader+n != r.cap {
				return nil, r.badRecord(pos, "padding length", n)
			}
			span = r.cap - off
		default:
			return nil, r.badRecord(pos, "tag", uint64(tag))
		}
		if span > r.tailCache-pos {
			return nil, r.badRecord(pos, "record running past the tail, length", n)
		}
		r.readEnd = pos + span
		if tag == tagPadding {
			continue
		}
		if crashpoint.Enabled {
			crashpoint.Hit("ring.read")
		}
		start := off + recordHeader
		return r.data[start : start+n : start+n], nil
	}
}

func (r *ByteRing) badRecord(pos uint64, what string, v uint64) error {
	return layout.WrapOp("shmring", "read", r.name, fmt.Errorf("%w: record at byte %d (head %d, tail %d): bad %s %d", ErrCorrupt, pos, r.head, r.tailCache, what, v))
}

// ReadWait is Read that blocks while the ring is empty, until ctx is done.
func (r *ByteRing) ReadWait(ctx context.Context) ([]byte, error) {
	if r.fg.GuardsEachCall() {
		return r.guardedReadWait(ctx)
	}
	return r.doReadWait(ctx)
}

func (r *ByteRing) guardedReadWait(ctx context.Context) (b []byte, err error) {
	defer r.guardC(&err, "read", r.fg.Enable())
	return r.doReadWait(ctx)
}

func (r *ByteRing) doReadWait(ctx context.Context) ([]byte, error) {
	for {
		b, err := r.doRead()
		if err == nil || !isEmpty(err) {
			return b, err
		}
		if err := r.waitDataBytes(ctx, r.readEnd); err != nil {
			return nil, err
		}
	}
}

// Release frees every record returned by Read since the last Release (one
// atomic store) and wakes a parked producer.
func (r *ByteRing) Release() error {
	if r.fg.GuardsEachCall() {
		return r.guardedRelease()
	}
	return r.doRelease()
}

func (r *ByteRing) guardedRelease() (err error) {
	defer r.guardC(&err, "release", r.fg.Enable())
	return r.doRelease()
}

func (r *ByteRing) doRelease() error {
	if r.cstate != roleHeld {
		if err := r.claimConsumerBytes(); err != nil {
			return err
		}
	}
	if r.readEnd == r.head {
		return nil
	}
	if crashpoint.Enabled {
		crashpoint.Hit("ring.releasing")
	}
	r.releaseHead(r.readEnd)
	return nil
}

// ReadInto waits for the next record (until ctx is done), copies it into
// buf and releases it (and any records read before it), returning its
// length. If buf is too small it returns an error wrapping io.ErrShortBuffer
// that names the needed size and leaves the record in the ring.
func (r *ByteRing) ReadInto(ctx context.Context, buf []byte) (int, error) {
	if r.fg.GuardsEachCall() {
		return r.guardedReadInto(ctx, buf)
	}
	return r.doReadInto(ctx, buf)
}

func (r *ByteRing) guardedReadInto(ctx context.Context, buf []byte) (n int, err error) {
	defer r.guardC(&err, "read", r.fg.Enable())
	return r.doReadInto(ctx, buf)
}

func (r *ByteRing) doReadInto(ctx context.Context, buf []byte) (int, error) {
	if r.cstate != roleHeld {
		// Claim first: claiming sets readEnd, which we may need to restore.
		if err := r.claimConsumerBytes(); err != nil {
			return 0, err
		}
	}
	before := r.readEnd
	b, err := r.doReadWait(ctx)
	if err != nil {
		return 0, err
	}
	if len(b) > len(buf) {
		r.readEnd = before
		return 0, layout.WrapOp("shmring", "read", r.name, fmt.Errorf("%w: record of %d bytes, buffer of %d", io.ErrShortBuffer, len(b), len(buf)))
	}
	n := copy(buf, b)
	return n, r.doRelease()
}

func (r *ByteRing) refreshTailBytes(pos uint64) (bool, error) {
	ok, err := r.refreshTailGuarded(pos)
	if err == nil {
		err = r.checkAligned(r.tailCache, "tail")
	}
	return ok, err
}

func (r *ByteRing) waitDataBytes(ctx context.Context, pos uint64) error {
	if err := r.waitData(ctx, pos); err != nil {
		return err
	}
	return r.checkAligned(r.tailCache, "tail")
}

func (r *ByteRing) claimConsumerBytes() error {
	if err := r.claimConsumer(); err != nil {
		return err
	}
	if err := r.checkAligned(r.head, "head"); err != nil {
		r.release(roleConsumer)
		r.cstate = roleNone
		return err
	}
	r.readEnd = r.head
	return nil
}
func isEmpty(err error) bool { return errors.Is(err, ErrEmpty) }
