package shmring

import (
	"reflect"
	"testing"

	"github.com/shmkit/shmkit/internal/formatdoc"
)

// TestFormatDoc holds docs/FORMAT.md's ring tables and constants to the Go
// types.
func TestFormatDoc(t *testing.T) {
	formatdoc.CheckPackage(t, "shmring", map[string]reflect.Type{
		"shmring.control": reflect.TypeFor[control](),
	})
	formatdoc.CheckConsts(t, "shmring", map[string]uint64{
		"tagRecord":    uint64(tagRecord),
		"tagPadding":   uint64(tagPadding),
		"recordHeader": recordHeader,
		"minByteCap":   minByteCap,
		"controlSize":  controlSize,
	})
}
