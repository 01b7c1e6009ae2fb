package shmqueue

import (
	"reflect"
	"testing"

	"github.com/shmkit/shmkit/internal/formatdoc"
)

// TestFormatDoc holds docs/FORMAT.md's queue tables and constants to the
// Go types.
func TestFormatDoc(t *testing.T) {
	formatdoc.CheckPackage(t, "shmqueue", map[string]reflect.Type{
		"shmqueue.futexControl": reflect.TypeFor[futexControl](),
		"shmqueue.sysvControl":  reflect.TypeFor[sysvControl](),
		"shmqueue.slot":         reflect.TypeFor[slot[uint64]](),
		"shmqueue.member":       reflect.TypeFor[member](),
	})
	formatdoc.CheckConsts(t, "shmqueue", map[string]uint64{
		"paramBackend":   paramBackend,
		"paramMembers":   paramMembers,
		"paramLanes":     paramLanes,
		"paramSemKey":    paramSemKey,
		"paramSemID":     paramSemID,
		"BackendFutex":   uint64(BackendFutex),
		"BackendSysV":    uint64(BackendSysV),
		"closedBit":      closedBit,
		"holeBit":        holeBit,
		"posLimit":       posLimit,
		"maxClaim":       maxClaim,
		"lanesPerMember": lanesPerMember,
		"laneActive":     laneActive,
		"lanePop":        lanePop,
		"laneCountShift": laneCountShift,
	})
}
