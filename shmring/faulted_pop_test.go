package shmring

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

type bigItem [16384]byte

// A Pop/TryPop whose copy faults (truncated segment) must return the zero
// value with the error, not a half-copied item.
func TestFaultedPopZeroValue(t *testing.T) {
	for _, try := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "torn")
		spec := "file:" + path
		r, err := Create[bigItem](spec, 2, WithFaultGuard())
		require.NoError(t, err)
		var it bigItem
		for i := range it {
			it[i] = 0xAA
		}
		require.NoError(t, r.Push(context.Background(), it))
		base := uintptr(unsafe.Pointer(unsafe.SliceData(r.core.seg.Raw().Bytes())))
		data := uintptr(unsafe.Pointer(unsafe.SliceData(r.core.seg.Region(regionData))))
		off := int64(data-base) + 8192
		off = (off + 4095) &^ 4095
		t.Logf("data at %d, truncating to %d", data-base, off)
		require.NoError(t, os.Truncate(path, off))
		var v bigItem
		if try {
			var ok bool
			v, ok = r.TryPop()
			require.False(t, ok)
		} else {
			v, err = r.Pop(context.Background())
			require.Error(t, err)
		}
		n := 0
		for _, b := range v {
			if b != 0 {
				n++
			}
		}
		if n != 0 {
			t.Errorf("try=%v: value returned with the fault has %d non-zero bytes", try, n)
		}
		_ = r.Close()
		_ = Remove(spec)
	}
}
