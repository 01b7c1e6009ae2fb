package layout

import (
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

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
