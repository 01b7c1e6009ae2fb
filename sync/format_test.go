package sync

import (
	"reflect"
	"testing"

	"github.com/shmkit/shmkit/internal/formatdoc"
)

// TestFormatDoc holds docs/FORMAT.md's tables of the shared primitives to
// the Go types.
func TestFormatDoc(t *testing.T) {
	formatdoc.CheckPackage(t, "sync", map[string]reflect.Type{
		"sync.Notifier": reflect.TypeFor[Notifier](),
		"sync.SeqCount": reflect.TypeFor[SeqCount](),
		"sync.Mutex":    reflect.TypeFor[Mutex](),
	})
	if parkedBit != 0x80000000 {
		t.Errorf("FORMAT.md says the parked bit is bit 31; Go has %#x", parkedBit)
	}
}
