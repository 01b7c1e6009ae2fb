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
// initializing, and fails at once if that creator has died. An object that
// is not a shmkit segment (another program's data, a text file, an empty or
// all-zero file) fails at once with ErrBadMagic, naming its first bytes;
// only an empty or all-zero object made less than CreatorGrace ago is
// waited for, as one whose creator is about to write its header.
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
	var empty *segment.EmptyError
	if errors.As(err, &empty) {
		// A creator sizes the object right after creating it: worth a
		// wait only while the object is that new.
		if justMade(empty.Origin) {
			return nil, &notYet{why: "object still has zero size", also: ErrTooSmall}
		}
		return nil, WrapOp("layout", "open", canonical(spec), fmt.Errorf("%w: the object is empty (0 bytes) and was last changed %s ago, so no creator is sizing it",
			ErrBadMagic, time.Since(empty.Origin.Changed).Round(time.Millisecond)))
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

// canonical is spec as the segment layer names it.
func canonical(spec string) string {
	if sp, err := segment.ParseSpec(spec); err == nil {
		return sp.String()
	}
	return spec
}

// CreatorGrace is how long after an object was made (or last sized: see
// segment.Origin) Open still takes it for one whose creator is about to
// write a header, when the object is empty or all zero. A creator writes
// its pid and the Initializing state within microseconds of sizing the
// object; after that, Open waits (up to the init timeout) only for a live
// creator named in the header. An older empty or all-zero object is not a
// shmkit segment, and Open says so at once.
const CreatorGrace = time.Second

// justMade reports whether an object with origin o may still be in the
// hands of a creator that has not written anything yet.
func justMade(o segment.Origin) bool {
	age := time.Since(o.Changed)
	if o.CreatorPID > 0 {
		// SysV records the creator, and its ctime in whole seconds.
		return age < CreatorGrace+time.Second && proc.Alive(proc.ID{PID: o.CreatorPID})
	}
	return age < CreatorGrace
}

// attach validates the header of an open raw segment.
func attach(raw *segment.Segment) (*Segment, error) {
	b := raw.Bytes()
	name := raw.Spec().String()
	st := StateReady // a b shorter than a header is reported by peek
	if len(b) >= HeaderSize {
		st = stateWord(b).Load()
	}
	if st == StateZero || st == StateInitializing {
		return nil, notReady(raw, b, st)
	}
	// The state word was loaded first (acquire): a Ready header is whole.
	// peek validates private copies, since a peer may keep writing.
	h, types, err := peek(b, len(b), st)
	if err != nil {
		return nil, WrapOp("layout", "open", name, err)
	}
	return &Segment{raw: raw, hdr: *h, types: types, regions: regionSlices(b, h)}, nil
}

// notReady explains a shared header whose state word st said Zero or
// Initializing: a creator still at work (a *notYet, worth waiting for),
// one that died, or bytes that were never a shmkit header. Unlike Peek it
// reads live shared memory, where the state word was loaded before the
// rest, so a magic already in place may only mean the creator finished
// since: the state word is loaded again before that is held against it.
//
// The init protocol (publish): the creator writes its pid and start time,
// stores Initializing, fills the regions, writes the header and the magic,
// and stores Ready. So Open waits for an Initializing state word naming a
// live creator, and for a creator that has written its identity but not
// yet the state word; it waits for an all-zero object only while that
// object is new enough for a creator to be about to write (justMade).
// Anything else is not a shmkit segment, said at once.
func notReady(raw *segment.Segment, b []byte, st uint32) error {
	name := raw.Spec().String()
	c := creatorRecord(b)
	switch {
	case st == StateInitializing && c.PID > 0:
		if creatorDied(b, c) {
			return WrapOp("layout", "open", name, fmt.Errorf("%w: creator pid %d died before finishing initialization (remove the segment and create it again)", ErrNotReady, c.PID))
		}
		return &notYet{why: fmt.Sprintf("creator pid %d still initializing", c.PID)}
	case st == StateInitializing:
		// The creator writes its pid before it stores Initializing.
		return WrapOp("layout", "open", name, fmt.Errorf("%w: init state word set but no creator pid written (first bytes are %s)", ErrCorrupt, firstBytes(b)))
	}
	// StateZero when loaded; the creator may have moved on since. It stores
	// Initializing before it writes any header byte, so if the bytes read
	// below include any of its writes, a second load of the state word (after
	// them) is no longer Zero: then this is a creator at work, not a foreign
	// object (a half-copied magic would otherwise read as one).
	var magic [8]byte
	copy(magic[:], b)
	c = creatorRecord(b)
	if stateWord(b).Load() != StateZero {
		return &notYet{why: "creator at work"} // retry reads it whole
	}
	switch {
	case magic == Magic:
		if stateWord(b).Load() != StateZero {
			return &notYet{why: "creator finishing"} // retry reads it whole
		}
		return WrapOp("layout", "open", name, notShmkit(b, len(b)))
	case magic == [8]byte{} && c.PID > 0 && c.Start != 0 && allZero(b[:offCreator]):
		// The creator's identity, not yet the state word.
		if creatorDied(b, c) {
			return WrapOp("layout", "open", name, fmt.Errorf("%w: creator pid %d died before finishing initialization (remove the segment and create it again)", ErrNotReady, c.PID))
		}
		return &notYet{why: fmt.Sprintf("creator pid %d starting", c.PID)}
	case allZero(b[:min(len(b), headRead)]):
		if o, err := raw.Origin(); err == nil && justMade(o) {
			return &notYet{why: "no header written yet (all zero)"}
		}
	}
	return WrapOp("layout", "open", name, notShmkit(b, len(b)))
}

// creatorDied reports whether creator c of the header in b died before
// finishing it. The state word is loaded again after the liveness check: a
// creator that finished (stored Ready) and exited since our first load is
// not one that died during initialization.
func creatorDied(b []byte, c ProcRecord) bool {
	if proc.Alive(proc.ID{PID: c.PID, Start: c.Start}) {
		return false
	}
	st := stateWord(b).Load()
	return st == StateZero || st == StateInitializing
}

// headRead bounds how much of an all-zero object notShmkit and notReady scan.
const headRead = 64 << 10

// notShmkit is the ErrBadMagic error for an object whose first bytes b
// (of size in all) are not a shmkit header, saying what they are.
func notShmkit(b []byte, size int) error {
	b = b[:min(len(b), headRead)]
	switch {
	case size == 0:
		return fmt.Errorf("%w: the object is empty (0 bytes)", ErrBadMagic)
	case allZero(b):
		return fmt.Errorf("%w: its first %d bytes are all zero (a shmkit segment begins with %q)", ErrBadMagic, len(b), Magic[:])
	case len(b) >= len(Magic) && [8]byte(b[:8]) == Magic && allZero(b[8:]):
		return fmt.Errorf("%w: it begins with the shmkit magic %q but no header follows (the next %d bytes are zero)", ErrBadMagic, Magic[:], len(b)-8)
	}
	return fmt.Errorf("%w: first bytes are %s (a shmkit segment begins with %q)", ErrBadMagic, firstBytes(b), Magic[:])
}

// firstBytes shows up to 16 bytes of b in hex and as a quoted string.
func firstBytes(b []byte) string {
	b = b[:min(len(b), 16)]
	return fmt.Sprintf("% x (%q)", b, b)
}

// Peek decodes the header at the start of b without attaching anything,
// for tools that look at segments without opening them (cmd/shmctl). b is a
// private copy of the object's first bytes, read front to back (pread, or a
// copy of a mapping), holding at least the header and the type
// descriptions; size is the size of the whole object. Nothing in b is
// trusted: Peek never panics and validates exactly as Open does.
//
// The results say what b holds:
//
//   - nil header, error wrapping ErrBadMagic: not a shmkit segment, nor one
//     whose creator has begun (an all-zero object is not one either).
//   - nil header, error wrapping ErrTooSmall: b is shorter than a header (it
//     also wraps ErrBadMagic when b does not begin with the magic).
//   - header, error wrapping ErrNotReady: a creator started the segment and
//     has not finished (State is StateZero or StateInitializing). Only
//     Creator and State are certain to be written; ask package proc whether
//     the creator still lives.
//   - header, error wrapping ErrCorrupt, ErrVersion or ErrTooSmall: a shmkit
//     header that fails validation (or an impossible init history). The
//     header and the types, as far as they decode, are what the segment
//     claims, for display only.
//   - header, types, nil: a ready header that validates, and its element
//     types, checked against their fingerprints.
func Peek(b []byte, size int) (*Header, []TypeInfo, error) {
	st := StateReady
	if len(b) >= HeaderSize {
		st = binary.NativeEndian.Uint32(b[offState:])
	}
	return peek(b, size, st)
}

// peek is Peek with the state word given: attach loads it atomically from
// shared memory before copying the rest. b may be shared memory; peek reads
// it only through private copies.
func peek(b []byte, size int, st uint32) (*Header, []TypeInfo, error) {
	if len(b) < HeaderSize {
		if len(b) < len(Magic) || [8]byte(b[:8]) != Magic {
			// Not a shmkit segment, and also too short to be one.
			// Not a shmkit segment (what it says), and also too short to be
			// one (errors.Is only).
			return nil, nil, alsoIs{notShmkit(b, size), ErrTooSmall}
		}
		return nil, nil, fmt.Errorf("%w: %d bytes, header needs %d", ErrTooSmall, len(b), HeaderSize)
	}
	h := new(Header)
	copy(headerBytes(h), b[:HeaderSize])
	h.State = st
	starting := st == StateZero || st == StateInitializing
	switch {
	case h.Magic == Magic:
	case h.Magic == [8]byte{} && starting && h.Creator.PID > 0 &&
		(st == StateInitializing || h.Creator.Start != 0 && allZero(b[:offCreator])):
		// A creator began (and may have died) before writing the header:
		// only its identity and the state word are there yet.
	default:
		return nil, nil, notShmkit(b, size)
	}
	var desc []byte
	if h.TypeDescOff <= uint64(len(b)) && h.TypeDescLen <= min(uint64(len(b))-h.TypeDescOff, maxTypeDesc*MaxTypes) {
		desc = append([]byte(nil), b[h.TypeDescOff:h.TypeDescOff+h.TypeDescLen]...)
	}
	types, typesErr := decodeTypeDescs(desc, h)
	switch {
	case h.Magic == Magic && st == StateZero && allZero(b[len(Magic):min(len(b), headRead)]):
		return nil, nil, notShmkit(b, size)
	case h.Magic == Magic && st == StateZero:
		// The creator stores Initializing before anything else and the
		// magic last, just before Ready: this history is impossible.
		return h, types, fmt.Errorf("%w: header written but init state word is zero", ErrCorrupt)
	case starting && h.Creator.PID <= 0:
		return h, types, fmt.Errorf("%w: initializing segment names no creator (pid %d)", ErrCorrupt, h.Creator.PID)
	case starting:
		return h, types, fmt.Errorf("%w: creator pid %d has not finished initializing", ErrNotReady, h.Creator.PID)
	case st != StateReady:
		return h, types, fmt.Errorf("%w: init state word %#x is not a known state", ErrCorrupt, st)
	}
	if err := h.Validate(size, desc); err != nil {
		return h, types, err
	}
	if typesErr != nil {
		return h, types, typesErr
	}
	return h, types, nil
}

// alsoIs is err, matching one more sentinel through errors.Is without
// saying so in its text.
type alsoIs struct{ err, also error }

func (e alsoIs) Error() string   { return e.err.Error() }
func (e alsoIs) Unwrap() []error { return []error{e.err, e.also} }

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
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
			if d := layoutDiff(s.types[i].Layout, ti.Layout); d != "" {
				return WrapOp("layout", "open", name, fmt.Errorf("%w: segment holds %s, opened as %s (%s)", ErrTypeMismatch, s.types[i], ti, d))
			}
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

// decodeTypeDescs decodes the stored type descriptions of h from desc. It
// returns the descriptions as far as they decode (at most MaxTypes, for
// display even when damaged) and the first error: a truncated description,
// or one that does not hash to its fingerprint.
func decodeTypeDescs(b []byte, h *Header) ([]TypeInfo, error) {
	types := make([]TypeInfo, 0, min(h.NumTypes, MaxTypes))
	var first error
	for i := range min(h.NumTypes, MaxTypes) {
		if len(b) < 8 {
			return types, fmt.Errorf("%w: type description %d truncated", ErrCorrupt, i)
		}
		nl, ll := uint64(binary.LittleEndian.Uint32(b)), uint64(binary.LittleEndian.Uint32(b[4:]))
		b = b[8:]
		if nl > uint64(len(b)) || ll > uint64(len(b))-nl {
			return types, fmt.Errorf("%w: type description %d lengths %d+%d exceed %d bytes", ErrCorrupt, i, nl, ll, len(b))
		}
		ti := TypeInfo{
			Name:        string(b[:nl]),
			Layout:      string(b[nl : nl+ll]),
			Fingerprint: h.Types[i].Fingerprint,
			Size:        h.Types[i].Size,
			Align:       h.Types[i].Align,
		}
		b = b[nl+ll:]
		if xxhash.Sum64String(ti.Layout) != ti.Fingerprint && first == nil {
			first = fmt.Errorf("%w: type description %d does not match its fingerprint %#x", ErrCorrupt, i, ti.Fingerprint)
		}
		types = append(types, ti)
	}
	if h.NumTypes > MaxTypes && first == nil {
		first = fmt.Errorf("%w: %d types (max %d)", ErrCorrupt, h.NumTypes, MaxTypes)
	}
	return types, first
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
