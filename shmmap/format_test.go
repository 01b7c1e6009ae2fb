package shmmap

import (
	"reflect"
	"testing"

	"github.com/shmkit/shmkit/internal/formatdoc"
)

// TestFormatDoc holds docs/FORMAT.md's map tables and constants to the Go
// types.
func TestFormatDoc(t *testing.T) {
	formatdoc.CheckPackage(t, "shmmap", map[string]reflect.Type{
		"shmmap.shardCtl": reflect.TypeFor[shardCtl](),
		"shmmap.slot":     reflect.TypeFor[slot[uint64, uint64]](),
	})
	formatdoc.CheckConsts(t, "shmmap", map[string]uint64{
		"paramScheme":           paramScheme,
		"paramSeed":             paramSeed,
		"paramShardBits":        paramShardBits,
		"paramShardSlots":       paramShardSlots,
		"paramShardLimit":       paramShardLimit,
		"hashSchemeXXH64Prefix": hashSchemeXXH64Prefix,
		"ctlHeaderSize":         ctlHeaderSize,
		"opNone":                opNone,
	})
}
