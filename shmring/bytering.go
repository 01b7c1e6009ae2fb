package shmring

import (
	"fmt"
	"reflect"

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
