package shmring

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/internal/faultguard"
	"github.com/shmkit/shmkit/internal/options"
	"github.com/shmkit/shmkit/layout"
	shmsync "github.com/shmkit/shmkit/sync"
)

// ByteRing is a single-producer single-consumer ring of variable-length
// byte records in shared memory, for pipelines that carry encoded messages.
// Roles, concurrency and crash semantics are those of Ring (see the package
// documentation), with bytes in place of items.
//
// # Format
//
// The data region is capacity bytes (a power of two, at least 64). Each
// record is an 8-byte header, little-endian length (uint32) then tag
// (uint32), followed by the payload, and padded to a multiple of 8 bytes.
// Records never wrap: when a record does not fit before the end of the
// region, the producer writes a padding record (tag "PAD1") covering the
// rest of the region and places the record at offset 0. A record's payload
// is therefore always contiguous, which is what lets Read return it in
// place. MaxRecord (capacity/2 - 8) is the largest payload that is
// guaranteed to fit even when the ring is empty but its cursors sit at an
// awkward offset; larger records fail with ErrTooLarge.
//
// Cursors count bytes, including headers and padding; tail is published
// only at Commit, after header and payload are written, so a producer killed
// between Reserve and Commit leaves nothing visible.
type ByteRing struct {
	core
	data []byte // immutable after Open

	// Producer: the pending reservation, if any. (core ends with padding,
	// so these do not share a line with the consumer's fields.)
	resvOK   bool
	resvPad  uint64 // padding bytes before the record (0 or to the region end)
	resvOff  uint64 // offset of the record header in data
	resvSize int    // payload bytes reserved
}

// Record header tags. Chosen as ASCII words so a hexdump is readable and a
// zeroed region is never mistaken for records.
const (
	tagRecord  uint32 = 0x31434552 // "REC1"
	tagPadding uint32 = 0x31444150 // "PAD1"

	recordHeader = 8
	minByteCap   = 64
)

func align8(n uint64) uint64 { return (n + 7) &^ 7 }

// CreateBytes makes a byte ring with a data region of capacity bytes (at
// least 64, rounded up to a power of two like every capacity: see
// layout.RoundCapacity) in the segment named by spec.
func CreateBytes(spec string, capacity int, opts ...Option) (*ByteRing, error) {
	cfg, err := buildConfig("create", spec, opts)
	if err != nil {
		return nil, layout.WrapOp("shmring", "create", spec, err)
	}
	size, err := layout.RoundCapacity(capacity, minByteCap, maxCapacity)
	if err != nil {
		return nil, layout.WrapOp("shmring", "create", spec, fmt.Errorf("byte ring size: %w", err))
	}
	capacity = int(size)
	d := layout.Desc{
		Kind:     layout.KindByteRing,
		Capacity: uint64(capacity),
		Regions: []layout.Region{
			{Size: controlSize, Align: layout.LineSize},
			{Size: uint64(capacity), Align: layout.LineSize},
		},
	}
	seg, err := layout.Create(spec, d, nil, cfg.Layout...)
	if err != nil {
		return nil, layout.WrapOp("shmring", "create", spec, err)
	}
	r, err := newByteRing(seg, cfg)
	if err != nil {
		_ = seg.Close()
		return nil, layout.WrapOp("shmring", "create", spec, err)
	}
	return r, nil
}

// OpenBytes attaches the byte ring in the segment named by spec.
func OpenBytes(spec string, opts ...Option) (*ByteRing, error) {
	cfg, err := buildConfig("open", spec, opts)
	if err != nil {
		return nil, layout.WrapOp("shmring", "open", spec, err)
	}
	seg, err := layout.Open(spec, layout.Expect{Kind: layout.KindByteRing, Types: []reflect.Type{}}, cfg.Layout...)
	if err != nil {
		return nil, layout.WrapOp("shmring", "open", spec, err)
	}
	r, err := newByteRing(seg, cfg)
	if err != nil {
		_ = seg.Close()
		return nil, layout.WrapOp("shmring", "open", spec, err)
	}
	return r, nil
}

func newByteRing(seg *layout.Segment, cfg options.Config) (*ByteRing, error) {
	name := seg.Raw().Spec().String()
	h := seg.Header()
	capacity, err := checkCapacity(name, h.Capacity, maxCapacity)
	if err != nil {
		return nil, err
	}
	if capacity < minByteCap || seg.NumRegions() != 2 || uint64(len(seg.Region(regionData))) != capacity {
		return nil, layout.WrapOp("shmring", "open", name, fmt.Errorf("%w: byte ring of %d bytes with %d regions, data region %d bytes", ErrCorrupt, capacity, seg.NumRegions(), len(seg.Region(regionData))))
	}
	ctl, err := checkControl(seg)
	if err != nil {
		return nil, err
	}
	r := &ByteRing{data: seg.Region(regionData)}
	r.core.init(seg, ctl, capacity, cfg)
	return r, nil
}

// Cap returns the size of the data region in bytes.
func (r *ByteRing) Cap() int { return int(r.cap) }

// MaxRecord returns the largest payload a record may have: capacity/2 - 8.
func (r *ByteRing) MaxRecord() int { return int(r.cap/2 - recordHeader) }

// Len returns the bytes in use (published and not released, headers and
// padding included).
func (r *ByteRing) Len() int {
	return int(r.length())
}

// Stats returns a snapshot of the ring's shared state (Cap, Len, Head and
// Tail in bytes).
func (r *ByteRing) Stats() (RingStats, error) { return r.stats(layout.KindByteRing) }

// CloseWrites ends the stream, as Ring.CloseWrites does: the reader reads
// what is there and then gets ErrClosed.
func (r *ByteRing) CloseWrites() error { return r.closeWrites() }

// WaitSource makes a ByteRing a sync.Waitable: a WaitSet reports it when a
// record is readable.
func (r *ByteRing) WaitSource() (*shmsync.Notifier, func() bool) { return r.waitSource() }

// Segment returns the underlying segment (for tools).
func (r *ByteRing) Segment() *layout.Segment { return r.seg }

// Close releases this handle's roles and unmaps the segment. Slices from
// Reserve and Read must not be used afterwards. Not concurrent with other
// methods.
func (r *ByteRing) Close() error {
	r.resvOK = false
	return r.close()
}

// corruptBytes reports a byte ring whose cursors are not 8-aligned.
func (r *ByteRing) checkAligned(v uint64, what string) error {
	if v%8 != 0 {
		return layout.WrapOp("shmring", "check cursors", r.name, fmt.Errorf("%w: %s %d is not 8-byte aligned", ErrCorrupt, what, v))
	}
	return nil
}

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
	if r.guardAll {
		return r.guardedReserve(n)
	}
	return r.doReserve(n)
}

func (r *ByteRing) guardedReserve(n int) (b []byte, err error) {
	defer r.guardP(&err, "reserve", faultguard.Enable())
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
	if r.guardAll {
		return r.guardedReserveWait(ctx, n)
	}
	return r.doReserveWait(ctx, n)
}

func (r *ByteRing) guardedReserveWait(ctx context.Context, n int) (b []byte, err error) {
	defer r.guardP(&err, "reserve", faultguard.Enable())
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
	if r.guardAll {
		return r.guardedCommit(k)
	}
	return r.doCommit(k)
}

func (r *ByteRing) guardedCommit(k int) (err error) {
	defer r.guardP(&err, "commit", faultguard.Enable())
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
	if r.guardAll {
		return r.guardedWrite(ctx, p)
	}
	return r.doWrite(ctx, p)
}

func (r *ByteRing) guardedWrite(ctx context.Context, p []byte) (err error) {
	defer r.guardP(&err, "write", faultguard.Enable())
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
	if r.guardAll {
		return r.guardedTryWrite(p)
	}
	return r.doTryWrite(p)
}

func (r *ByteRing) guardedTryWrite(p []byte) (err error) {
	defer r.guardP(&err, "write", faultguard.Enable())
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
	if r.guardAll {
		return r.guardedRead()
	}
	return r.doRead()
}

func (r *ByteRing) guardedRead() (b []byte, err error) {
	defer r.guardC(&err, "read", faultguard.Enable())
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
	if r.guardAll {
		return r.guardedReadWait(ctx)
	}
	return r.doReadWait(ctx)
}

func (r *ByteRing) guardedReadWait(ctx context.Context) (b []byte, err error) {
	defer r.guardC(&err, "read", faultguard.Enable())
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
	if r.guardAll {
		return r.guardedRelease()
	}
	return r.doRelease()
}

func (r *ByteRing) guardedRelease() (err error) {
	defer r.guardC(&err, "release", faultguard.Enable())
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
	if r.guardAll {
		return r.guardedReadInto(ctx, buf)
	}
	return r.doReadInto(ctx, buf)
}

func (r *ByteRing) guardedReadInto(ctx context.Context, buf []byte) (n int, err error) {
	defer r.guardC(&err, "read", faultguard.Enable())
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

func isFull(err error) bool  { return errors.Is(err, ErrFull) }
func isEmpty(err error) bool { return errors.Is(err, ErrEmpty) }
