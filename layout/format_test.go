package layout

import (
	"reflect"
	"testing"

	"github.com/shmkit/shmkit/internal/formatdoc"
)

// TestFormatDoc holds docs/FORMAT.md's header tables and constants to the
// Go types: the document cannot drift from the code.
func TestFormatDoc(t *testing.T) {
	formatdoc.CheckPackage(t, "layout", map[string]reflect.Type{
		"layout.Header":       reflect.TypeFor[Header](),
		"layout.ProcRecord":   reflect.TypeFor[ProcRecord](),
		"layout.TypeRecord":   reflect.TypeFor[TypeRecord](),
		"layout.RegionRecord": reflect.TypeFor[RegionRecord](),
	})
	formatdoc.CheckConsts(t, "layout", map[string]uint64{
		"FormatVersion":     FormatVersion,
		"HeaderSize":        uint64(HeaderSize),
		"LineSize":          LineSize,
		"PageSize":          PageSize,
		"MaxTypes":          MaxTypes,
		"MaxRegions":        MaxRegions,
		"MaxParams":         MaxParams,
		"KindValue":         uint64(KindValue),
		"KindRing":          uint64(KindRing),
		"KindByteRing":      uint64(KindByteRing),
		"KindQueue":         uint64(KindQueue),
		"KindMap":           uint64(KindMap),
		"KindBus":           uint64(KindBus),
		"StateZero":         uint64(StateZero),
		"StateInitializing": uint64(StateInitializing),
		"StateReady":        uint64(StateReady),
	})
	if offChecksum != 328 {
		t.Errorf("FORMAT.md's checksum formula covers 328 header bytes; Checksum is at %d", offChecksum)
	}
}
