package layout

import (
	"fmt"
	"time"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/internal/proc"
	"github.com/shmkit/shmkit/segment"
)

// Create makes the segment named by spec, sized for d, and runs the init
// protocol: init (may be nil) fills the structure's regions before the
// segment is published as ready. On any error the object is removed again.
func Create(spec string, d Desc, init func(*Segment) error, opts ...Option) (*Segment, error) {
	o := buildOptions(opts)
	if !d.Kind.known() {
		return nil, WrapOp("layout", "create", spec, fmt.Errorf("unknown kind %d", uint32(d.Kind)))
	}
	if len(d.Types) > MaxTypes || len(d.Regions) > MaxRegions {
		return nil, WrapOp("layout", "create", spec, fmt.Errorf("%d types, %d regions (max %d, %d)", len(d.Types), len(d.Regions), MaxTypes, MaxRegions))
	}
	types := make([]TypeInfo, len(d.Types))
	for i, t := range d.Types {
		ti, err := Describe(t)
		if err != nil {
			return nil, err
		}
		types[i] = ti
	}
	h := Header{
		Magic:       Magic,
		Version:     FormatVersion,
		HeaderSize:  uint32(HeaderSize),
		Kind:        d.Kind,
		NumTypes:    uint32(len(types)),
		NumRegions:  uint32(len(d.Regions)),
		Flags:       d.Flags,
		Capacity:    d.Capacity,
		CreatedUnix: time.Now().UnixNano(),
		Params:      d.Params,
	}
	me := proc.Self()
	h.Creator = ProcRecord{PID: me.PID, Start: me.Start}
	desc := encodeTypeDescs(types)
	h.TypeDescOff = uint64(HeaderSize)
	h.TypeDescLen = uint64(len(desc))
	end := h.TypeDescOff + h.TypeDescLen
	for i, r := range d.Regions {
		if r.Align&(r.Align-1) != 0 || r.Align > PageSize {
			return nil, WrapOp("layout", "create", spec, fmt.Errorf("region %d alignment %d is not a power of two up to %d", i, r.Align, PageSize))
		}
		off := alignUp(end, max(r.Align, LineSize))
		if r.Size > 1<<46 || off+r.Size < off {
			return nil, WrapOp("layout", "create", spec, fmt.Errorf("region %d of %d bytes is too large", i, r.Size))
		}
		h.Regions[i] = RegionRecord{Off: off, Size: r.Size}
		end = off + r.Size
	}
	h.SegmentSize = alignUp(end, PageSize)
	for i, ti := range types {
		h.Types[i] = TypeRecord{Fingerprint: ti.Fingerprint, Size: ti.Size, Align: ti.Align}
	}
	if h.SegmentSize > uint64(maxInt) {
		return nil, WrapOp("layout", "create", spec, fmt.Errorf("%d bytes is too large", h.SegmentSize))
	}

	raw, err := segment.Create(spec, int(h.SegmentSize), o.Segment...)
	if err != nil {
		return nil, err
	}
	s, err := publish(raw, &h, desc, types, init)
	if err != nil {
		_ = raw.Close()
		_ = segment.Remove(spec)
		return nil, err
	}
	return s, nil
}

const maxInt = int(^uint(0) >> 1)

// publish writes the header into a freshly created raw segment following the
// init protocol.
func publish(raw *segment.Segment, h *Header, desc []byte, types []TypeInfo, init func(*Segment) error) (*Segment, error) {
	b := raw.Bytes()
	if len(b) < int(h.SegmentSize) {
		return nil, fmt.Errorf("%w: created %d bytes, layout needs %d", ErrTooSmall, len(b), h.SegmentSize)
	}
	writeCreator(b, h.Creator)
	stateWord(b).Store(StateInitializing)
	copy(b[h.TypeDescOff:], desc)
	s := &Segment{raw: raw, types: types}
	s.regions = regionSlices(b, h)
	if crashpoint.Enabled {
		crashpoint.Hit("layout.initializing")
	}
	if init != nil {
		// The header is not yet final; init sees only its regions.
		s.hdr = *h
		if err := init(s); err != nil {
			return nil, err
		}
	}
	h.Checksum = h.sum(desc)
	// Everything before State, State last: an opener that sees Ready sees
	// the whole header (atomic store orders the plain copies before it).
	copy(b[:offState], headerBytes(h)[:offState])
	stateWord(b).Store(StateReady)
	s.hdr = *h
	return s, nil
}

func regionSlices(b []byte, h *Header) [][]byte {
	rs := make([][]byte, h.NumRegions)
	for i := range rs {
		r := h.Regions[i]
		rs[i] = b[r.Off : r.Off+r.Size : r.Off+r.Size]
	}
	return rs
}
