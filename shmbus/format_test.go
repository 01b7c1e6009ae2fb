package shmbus

import (
	"reflect"
	"testing"

	"github.com/shmkit/shmkit/internal/formatdoc"
)

// TestFormatDoc holds docs/FORMAT.md's bus tables and constants to the Go
// types.
func TestFormatDoc(t *testing.T) {
	formatdoc.CheckPackage(t, "shmbus", map[string]reflect.Type{
		"shmbus.control": reflect.TypeFor[control](),
		"shmbus.record":  reflect.TypeFor[record](),
		"shmbus.oslot":   reflect.TypeFor[oslot[uint64]](),
	})
	formatdoc.CheckConsts(t, "shmbus", map[string]uint64{
		"paramElemSize": paramElemSize,
		"paramMaxSubs":  paramMaxSubs,
		"paramOverflow": paramOverflow,
		"Block":         uint64(Block),
		"Overwrite":     uint64(Overwrite),
		"stateFree":     uint64(stateFree),
		"stateAnon":     uint64(stateAnon),
		"stateDurable":  uint64(stateDurable),
		"MaxNameLen":    MaxNameLen,
	})
}
