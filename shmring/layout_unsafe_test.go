package shmring

import (
	"testing"
	"unsafe"

	"github.com/shmkit/shmkit/layout"
	"github.com/stretchr/testify/require"
)

// TestControlLayout pins the control block: each hot word alone on its own
// 128-byte line, every atomic naturally aligned. These offsets are part of
// the on-segment format.
func TestControlLayout(t *testing.T) {
	var c control
	require.Equal(t, uintptr(0), unsafe.Offsetof(c.tail))
	require.Equal(t, uintptr(1*layout.LineSize), unsafe.Offsetof(c.head))
	require.Equal(t, uintptr(2*layout.LineSize), unsafe.Offsetof(c.notEmpty))
	require.Equal(t, uintptr(3*layout.LineSize), unsafe.Offsetof(c.notFull))
	require.Equal(t, uintptr(3*layout.LineSize+8), unsafe.Offsetof(c.notFullAt))
	require.Equal(t, uintptr(4*layout.LineSize), unsafe.Offsetof(c.producer))
	require.Equal(t, uintptr(4*layout.LineSize+8), unsafe.Offsetof(c.consumer))
	require.Equal(t, uintptr(4*layout.LineSize+16), unsafe.Offsetof(c.writesClosed))
	require.Equal(t, uintptr(5*layout.LineSize), unsafe.Sizeof(c))
	require.Equal(t, uint64(unsafe.Sizeof(c)), controlSize)
	require.Equal(t, uintptr(8), unsafe.Sizeof(c.notEmpty), "the notifier padding assumes 8 bytes")
	require.Equal(t, uintptr(8), unsafe.Alignof(c.tail))
	require.Equal(t, uintptr(4), unsafe.Alignof(c.notEmpty))

	// In a live segment: control region line-aligned, slots aligned for T.
	r, err := Create[item64](posixSpec(t), 16)
	require.NoError(t, err)
	defer r.Close()
	ctl := uintptr(unsafe.Pointer(r.ctl))
	require.Zero(t, ctl%layout.LineSize)
	require.Zero(t, uintptr(unsafe.Pointer(&r.slots[0]))%layout.LineSize)
	require.Equal(t, uintptr(64), unsafe.Sizeof(item64{}))
	require.Equal(t, uintptr(1024), unsafe.Sizeof(item1k{}))
	require.Equal(t, uintptr(8), unsafe.Sizeof(item8{}))
}
