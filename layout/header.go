// Package layout defines the on-segment format every shmkit structure
// shares: a fixed header that says exactly what lives in the segment, the
// rules for element types, their fingerprints, and the create/open protocol.
//
// # Segment layout
//
// docs/FORMAT.md specifies the format byte for byte (header offsets, the
// checksum, layout strings, and every structure's control block and
// protocol), for implementations in other languages; tests hold it to
// these types.
//
//	offset             contents
//	0                  Header (HeaderSize bytes; its first 328, up to
//	                   Checksum, are checksummed with the type descriptions)
//	TypeDescOff        type descriptions: per type, u32 name length,
//	                   u32 layout length, name, layout (see types.go)
//	Regions[0].Off     first structure region (128-byte aligned)
//	...                further regions, each 128-byte aligned
//	SegmentSize        end of what the layout needs (rounded to a page)
//
// The fields before Checksum never change after creation. The words after
// it (State) are updated atomically in place and are outside the checksum.
//
// # Init protocol
//
// A creator makes the object exclusively, records itself (pid and start
// time), stores State=Initializing, fills the header and lets the structure
// initialize its regions, computes the checksum, and stores State=Ready last.
// An opener that finds Initializing (or an all-zero header) waits up to the
// init timeout; if the recorded creator has died it fails at once with
// ErrNotReady naming the dead creator, instead of hanging.
//
// Nothing read from the segment is trusted: Open copies the header out of
// shared memory, validates the copy (magic, version, checksum, bounds of
// every region), and uses only the copy afterwards.
package layout

import (
	"fmt"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// Magic opens every shmkit segment.
var Magic = [8]byte{'S', 'H', 'M', 'K', 'I', 'T', 0x00, 0x01}

// FormatVersion is the on-segment format this build reads and writes.
const FormatVersion = 1

const (
	// CacheLine is the size of a cache line on the supported CPUs.
	CacheLine = 64
	// LineSize is the unit hot shared words are padded to: two cache lines,
	// because x86's adjacent-line prefetcher pulls lines in pairs and would
	// otherwise make neighbours share.
	LineSize = 2 * CacheLine
	// PageSize rounds segment sizes.
	PageSize = 4096
	// MaxTypes is the number of element types a header can describe (K, V).
	MaxTypes = 2
	// MaxRegions is the number of structure regions a header can describe.
	MaxRegions = 8
	// MaxParams is the number of kind-specific parameter words.
	MaxParams = 8
	// maxTypeDesc bounds one stored type description (name + layout).
	maxTypeDesc = 64 << 10
)

// Kind says which structure a segment holds.
type Kind uint32

// Structure kinds. Values are part of the format: never renumber.
const (
	KindAny      Kind = 0 // in Expect: accept any kind
	KindValue    Kind = 1
	KindRing     Kind = 2
	KindByteRing Kind = 3
	KindQueue    Kind = 4
	KindMap      Kind = 5
	KindBus      Kind = 6
)

func (k Kind) String() string {
	switch k {
	case KindAny:
		return "any"
	case KindValue:
		return "value"
	case KindRing:
		return "ring"
	case KindByteRing:
		return "bytering"
	case KindQueue:
		return "queue"
	case KindMap:
		return "map"
	case KindBus:
		return "bus"
	}
	return fmt.Sprintf("kind(%d)", uint32(k))
}

func (k Kind) known() bool { return k >= KindValue && k <= KindBus }

// Init states. Chosen far apart so a flipped bit never turns one into
// another (or into zero).
const (
	StateZero         uint32 = 0
	StateInitializing uint32 = 0x494e4954 // "INIT"
	StateReady        uint32 = 0x52454459 // "REDY"
)

// ProcRecord names a process in shared memory (see internal/proc).
type ProcRecord struct {
	PID   int32
	_     uint32
	Start uint64
}

// TypeRecord is one element type's entry in the header.
type TypeRecord struct {
	Fingerprint uint64
	Size        uint64
	Align       uint64
}

// RegionRecord locates one structure region.
type RegionRecord struct {
	Off  uint64
	Size uint64
}

// Header is the fixed start of every shmkit segment. Its size and field
// offsets are part of the format and asserted in tests.
type Header struct {
	Magic       [8]byte
	Version     uint32
	HeaderSize  uint32 // unsafe.Sizeof(Header{}) of the writer
	Kind        Kind
	NumTypes    uint32
	NumRegions  uint32
	Flags       uint32 // kind-specific
	SegmentSize uint64 // bytes the layout needs; the object may be larger
	Capacity    uint64 // elements, slots or bytes, per kind
	Creator     ProcRecord
	CreatedUnix int64 // creation time, Unix nanoseconds
	TypeDescOff uint64
	TypeDescLen uint64
	Types       [MaxTypes]TypeRecord
	Params      [MaxParams]uint64 // kind-specific, immutable
	Regions     [MaxRegions]RegionRecord
	// Checksum is xxhash64 (seed 0) of the header's bytes before this
	// field (offsets 0..327) followed by the TypeDescLen bytes of type
	// descriptions at TypeDescOff; see sum.
	Checksum uint64

	// Mutable words, outside the checksum.
	State uint32
	_     [LineSize - 4]byte
}

// HeaderSize is the size of Header: the first region starts after it.
const HeaderSize = int(unsafe.Sizeof(Header{}))

var (
	offChecksum = unsafe.Offsetof(Header{}.Checksum)
	offState    = unsafe.Offsetof(Header{}.State)
	offCreator  = unsafe.Offsetof(Header{}.Creator)
)

// sum computes the checksum over the header's immutable part followed by
// the type descriptions, which are just as immutable.
func (h *Header) sum(desc []byte) uint64 {
	d := xxhash.New()
	_, _ = d.Write(headerBytes(h)[:offChecksum])
	_, _ = d.Write(desc)
	return d.Sum64()
}

// Validate checks a private copy of a header, and of the type descriptions
// it locates, against the size of the object they were read from. It
// returns nil or an error wrapping one of ErrBadMagic, ErrVersion,
// ErrCorrupt or ErrTooSmall that says what failed.
func (h *Header) Validate(objectSize int, desc []byte) error {
	if h.Magic != Magic {
		return fmt.Errorf("%w: first bytes are % x", ErrBadMagic, h.Magic[:])
	}
	if h.Version != FormatVersion {
		return fmt.Errorf("%w: segment has format %d, this build reads %d", ErrVersion, h.Version, FormatVersion)
	}
	if uint64(len(desc)) != h.TypeDescLen {
		return fmt.Errorf("%w: type descriptions at [%d, +%d) outside the %d-byte object", ErrCorrupt, h.TypeDescOff, h.TypeDescLen, objectSize)
	}
	if got := h.sum(desc); got != h.Checksum {
		return fmt.Errorf("%w: header checksum %#x, computed %#x", ErrCorrupt, h.Checksum, got)
	}
	if h.HeaderSize != uint32(HeaderSize) {
		return fmt.Errorf("%w: header size %d, expected %d", ErrCorrupt, h.HeaderSize, HeaderSize)
	}
	if !h.Kind.known() {
		return fmt.Errorf("%w: unknown kind %d", ErrCorrupt, uint32(h.Kind))
	}
	if h.NumTypes > MaxTypes || h.NumRegions > MaxRegions {
		return fmt.Errorf("%w: %d types, %d regions (max %d, %d)", ErrCorrupt, h.NumTypes, h.NumRegions, MaxTypes, MaxRegions)
	}
	if h.SegmentSize < uint64(HeaderSize) || h.SegmentSize > uint64(objectSize) {
		if h.SegmentSize > uint64(objectSize) {
			return fmt.Errorf("%w: header says %d bytes, object has %d", ErrTooSmall, h.SegmentSize, objectSize)
		}
		return fmt.Errorf("%w: segment size %d below header size", ErrCorrupt, h.SegmentSize)
	}
	end := uint64(HeaderSize)
	if err := checkSpan("type descriptions", h.TypeDescOff, h.TypeDescLen, end, h.SegmentSize, 8); err != nil {
		return err
	}
	end = h.TypeDescOff + h.TypeDescLen
	for i := range h.NumRegions {
		r := h.Regions[i]
		if err := checkSpan(fmt.Sprintf("region %d", i), r.Off, r.Size, end, h.SegmentSize, LineSize); err != nil {
			return err
		}
		end = r.Off + r.Size
	}
	for i := range h.NumTypes {
		tr := h.Types[i]
		if tr.Align == 0 || tr.Align&(tr.Align-1) != 0 || tr.Align > PageSize || tr.Size%tr.Align != 0 {
			return fmt.Errorf("%w: type %d has size %d, align %d", ErrCorrupt, i, tr.Size, tr.Align)
		}
	}
	return nil
}

// checkSpan checks that [off, off+size) starts at or after min, ends by max,
// does not overflow, and is aligned.
func checkSpan(what string, off, size, min, max, align uint64) error {
	if off < min || off%align != 0 || size > max || off > max-size {
		return fmt.Errorf("%w: %s at [%d, +%d) outside [%d, %d) or not %d-aligned", ErrCorrupt, what, off, size, min, max, align)
	}
	return nil
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }
