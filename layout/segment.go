package layout

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/internal/mem"
	"github.com/shmkit/shmkit/internal/proc"
	"github.com/shmkit/shmkit/segment"
)

// Region asks for one section of a segment.
type Region struct {
	Size  uint64
	Align uint64 // a power of two; 0 means LineSize. Never less than LineSize.
}

// Desc is what a structure asks Create for.
type Desc struct {
	Kind     Kind
	Types    []reflect.Type // element types in order: T, or K then V
	Capacity uint64
	Flags    uint32
	Params   [MaxParams]uint64
	Regions  []Region
}

// Expect is what a structure asks Open to verify.
type Expect struct {
	Kind  Kind           // KindAny accepts any kind (tools)
	Types []reflect.Type // nil: do not check types (tools)
}

// Options tune Create and Open.
type Options struct {
	Segment     []segment.Option
	InitTimeout time.Duration // how long Open waits for a creator to finish; default 2s
}

// Option sets an Options field.
type Option func(*Options)

// WithSegment passes options to the segment layer (mode, populate, read-only).
func WithSegment(opts ...segment.Option) Option {
	return func(o *Options) { o.Segment = append(o.Segment, opts...) }
}

// WithInitTimeout sets how long Open waits for a segment whose creator is
// still initializing it.
func WithInitTimeout(d time.Duration) Option {
	return func(o *Options) { o.InitTimeout = d }
}

// DefaultInitTimeout is how long Open waits for a live creator.
const DefaultInitTimeout = 2 * time.Second

func buildOptions(opts []Option) Options {
	o := Options{InitTimeout: DefaultInitTimeout}
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

// Segment is an attached shmkit segment with a validated header.
//
// The region slices alias shared memory and stay valid until Close; using
// them after Close faults. A Segment may be used from many goroutines; Close
// must not race with other use.
type Segment struct {
	raw     *segment.Segment
	hdr     Header // private, validated copy
	types   []TypeInfo
	regions [][]byte
}

// Header returns the validated private copy of the header.
func (s *Segment) Header() *Header { return &s.hdr }

// Types returns the stored descriptions of the element types.
func (s *Segment) Types() []TypeInfo { return s.types }

// Region returns region i, which the header validated to lie inside the
// mapping. It returns nil for an index the header does not have.
func (s *Segment) Region(i int) []byte {
	if i < 0 || i >= len(s.regions) {
		return nil
	}
	return s.regions[i]
}

// NumRegions returns how many regions the segment has.
func (s *Segment) NumRegions() int { return len(s.regions) }

// Raw returns the underlying OS segment.
func (s *Segment) Raw() *segment.Segment { return s.raw }

// Close unmaps the segment. The object stays until Remove.
func (s *Segment) Close() error { return s.raw.Close() }

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

// Open attaches the segment named by spec and checks that it holds what want
// describes. It waits (up to the init timeout) for a creator that is still
// initializing, and fails at once if that creator has died.
func Open(spec string, want Expect, opts ...Option) (*Segment, error) {
	o := buildOptions(opts)
	deadline := time.Now().Add(o.InitTimeout)
	backoff := 50 * time.Microsecond
	for {
		s, err := tryOpen(spec, o)
		if err == nil {
			if err := s.check(want); err != nil {
				_ = s.Close()
				return nil, err
			}
			return s, nil
		}
		var retry *notYet
		if !errors.As(err, &retry) {
			return nil, err
		}
		if time.Now().After(deadline) {
			if retry.also != nil {
				return nil, WrapOp("layout", "open", spec, fmt.Errorf("%w (%w): %s after %v", ErrNotReady, retry.also, retry.why, o.InitTimeout))
			}
			return nil, WrapOp("layout", "open", spec, fmt.Errorf("%w: %s after %v", ErrNotReady, retry.why, o.InitTimeout))
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 20*time.Millisecond)
	}
}

// notYet marks an open that may succeed once the creator finishes.
type notYet struct {
	why  string
	also error // a second sentinel the final error wraps, if any
}

func (e *notYet) Error() string { return e.why }

func tryOpen(spec string, o Options) (*Segment, error) {
	raw, err := segment.Open(spec, o.Segment...)
	if errors.Is(err, segment.ErrEmptyObject) {
		// A creator sizes the object right after creating it.
		return nil, &notYet{why: "object still has zero size", also: ErrTooSmall}
	}
	if err != nil {
		return nil, err
	}
	s, err := attach(raw)
	if err != nil {
		_ = raw.Close()
		return nil, err
	}
	return s, nil
}

// attach validates the header of an open raw segment.
func attach(raw *segment.Segment) (*Segment, error) {
	b := raw.Bytes()
	name := raw.Spec().String()
	if len(b) < HeaderSize {
		return nil, WrapOp("layout", "open", name, fmt.Errorf("%w: %d bytes, header needs %d", ErrTooSmall, len(b), HeaderSize))
	}
	switch st := stateWord(b).Load(); st {
	case StateReady:
	case StateZero, StateInitializing:
		var magic [8]byte
		copy(magic[:], b)
		if st == StateZero && magic != Magic && magic != [8]byte{} {
			return nil, WrapOp("layout", "open", name, fmt.Errorf("%w: first bytes are % x", ErrBadMagic, magic[:]))
		}
		c := creatorRecord(b)
		if c.PID != 0 && !proc.Alive(proc.ID{PID: c.PID, Start: c.Start}) {
			return nil, WrapOp("layout", "open", name, fmt.Errorf("%w: creator pid %d died before finishing initialization (remove the segment and create it again)", ErrNotReady, c.PID))
		}
		if c.PID == 0 {
			return nil, &notYet{why: "no shmkit header written (all zero)"}
		}
		return nil, &notYet{why: fmt.Sprintf("creator pid %d still initializing", c.PID)}
	default:
		var magic [8]byte
		copy(magic[:], b)
		if magic != Magic {
			return nil, WrapOp("layout", "open", name, fmt.Errorf("%w: first bytes are % x", ErrBadMagic, magic[:]))
		}
		return nil, WrapOp("layout", "open", name, fmt.Errorf("%w: init state word %#x is not a known state", ErrCorrupt, st))
	}
	// Validate private copies: a peer may keep writing the shared bytes.
	var h Header
	copy(headerBytes(&h), b[:HeaderSize])
	var desc []byte
	if h.TypeDescOff <= uint64(len(b)) && h.TypeDescLen <= min(uint64(len(b))-h.TypeDescOff, maxTypeDesc*MaxTypes) {
		desc = append([]byte(nil), b[h.TypeDescOff:h.TypeDescOff+h.TypeDescLen]...)
	}
	if err := h.Validate(len(b), desc); err != nil {
		return nil, WrapOp("layout", "open", name, err)
	}
	types, err := decodeTypeDescs(desc, &h)
	if err != nil {
		return nil, WrapOp("layout", "open", name, err)
	}
	return &Segment{raw: raw, hdr: h, types: types, regions: regionSlices(b, &h)}, nil
}

// check verifies kind and element types against what the caller expects.
func (s *Segment) check(want Expect) error {
	name := s.raw.Spec().String()
	if want.Kind != KindAny && s.hdr.Kind != want.Kind {
		return WrapOp("layout", "open", name, fmt.Errorf("%w: segment holds a %s, opened as a %s", ErrTypeMismatch, s.hdr.Kind, want.Kind))
	}
	if want.Types == nil {
		return nil
	}
	if len(want.Types) != len(s.types) {
		return WrapOp("layout", "open", name, fmt.Errorf("%w: segment has %d element types, opened with %d", ErrTypeMismatch, len(s.types), len(want.Types)))
	}
	for i, t := range want.Types {
		ti, err := Describe(t)
		if err != nil {
			return err
		}
		if ti.Fingerprint != s.types[i].Fingerprint || ti.Layout != s.types[i].Layout {
			return WrapOp("layout", "open", name, fmt.Errorf("%w: segment holds %s, opened as %s", ErrTypeMismatch, s.types[i], ti))
		}
	}
	return nil
}

// encodeTypeDescs stores, per type: u32 name length, u32 layout length,
// name, layout.
func encodeTypeDescs(types []TypeInfo) []byte {
	var out []byte
	for _, ti := range types {
		name, lay := ti.Name, ti.Layout
		if len(name)+len(lay) > maxTypeDesc {
			name = name[:min(len(name), 256)]
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(len(name)))
		out = binary.LittleEndian.AppendUint32(out, uint32(len(lay)))
		out = append(out, name...)
		out = append(out, lay...)
	}
	return out
}

func decodeTypeDescs(b []byte, h *Header) ([]TypeInfo, error) {
	types := make([]TypeInfo, h.NumTypes)
	for i := range types {
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: type description %d truncated", ErrCorrupt, i)
		}
		nl, ll := uint64(binary.LittleEndian.Uint32(b)), uint64(binary.LittleEndian.Uint32(b[4:]))
		b = b[8:]
		if nl > uint64(len(b)) || ll > uint64(len(b))-nl {
			return nil, fmt.Errorf("%w: type description %d lengths %d+%d exceed %d bytes", ErrCorrupt, i, nl, ll, len(b))
		}
		ti := TypeInfo{
			Name:        string(b[:nl]),
			Layout:      string(b[nl : nl+ll]),
			Fingerprint: h.Types[i].Fingerprint,
			Size:        h.Types[i].Size,
			Align:       h.Types[i].Align,
		}
		b = b[nl+ll:]
		if xxhash.Sum64String(ti.Layout) != ti.Fingerprint {
			return nil, fmt.Errorf("%w: type description %d does not match its fingerprint %#x", ErrCorrupt, i, ti.Fingerprint)
		}
		types[i] = ti
	}
	return types, nil
}

// View returns region i of s as *T, checking size and alignment.
func View[T any](s *Segment, i int) (*T, error) {
	p, err := mem.Ptr[T](s.Region(i))
	if err != nil {
		return nil, fmt.Errorf("%w: region %d: %w", ErrCorrupt, i, err)
	}
	return p, nil
}

// ViewSlice returns region i of s as n consecutive T.
func ViewSlice[T any](s *Segment, i int, n int) ([]T, error) {
	v, err := mem.Slice[T](s.Region(i), n)
	if err != nil {
		return nil, fmt.Errorf("%w: region %d: %w", ErrCorrupt, i, err)
	}
	return v, nil
}
