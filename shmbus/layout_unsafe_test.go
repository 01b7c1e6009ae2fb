package shmbus

import (
	"testing"
	"unsafe"

	"github.com/shmkit/shmkit/layout"
	"github.com/stretchr/testify/require"
)

// TestLayout pins the control block and the subscriber record: each hot
// word alone on its own 128-byte line, every atomic naturally aligned.
// These offsets are part of the on-segment format.
func TestLayout(t *testing.T) {
	var c control
	L := uintptr(layout.LineSize)
	require.Equal(t, uintptr(0), unsafe.Offsetof(c.tail))
	require.Equal(t, 1*L, unsafe.Offsetof(c.notEmpty))
	require.Equal(t, 2*L, unsafe.Offsetof(c.notFull))
	require.Equal(t, 2*L+8, unsafe.Offsetof(c.notFullAt))
	require.Equal(t, 3*L, unsafe.Offsetof(c.gen))
	require.Equal(t, 3*L+8, unsafe.Offsetof(c.closed))
	require.Equal(t, 4*L, unsafe.Offsetof(c.publisher))
	require.Equal(t, 4*L+8, unsafe.Offsetof(c.lock))
	require.Equal(t, 4*L+16, unsafe.Offsetof(c.tableFree))
	require.Equal(t, 5*L, unsafe.Sizeof(c))
	require.Equal(t, uint64(unsafe.Sizeof(c)), controlSize)
	require.Equal(t, uintptr(8), unsafe.Sizeof(c.notEmpty), "the notifier padding assumes 8 bytes")

	var r record
	require.Equal(t, uintptr(0), unsafe.Offsetof(r.cursor))
	require.Equal(t, L, unsafe.Offsetof(r.owner))
	require.Equal(t, L+8, unsafe.Offsetof(r.state))
	require.Equal(t, L+16, unsafe.Offsetof(r.lapped))
	require.Equal(t, L+24, unsafe.Offsetof(r.missed))
	require.Equal(t, L+32, unsafe.Offsetof(r.name))
	require.Equal(t, 2*L, unsafe.Sizeof(r))
	require.Equal(t, uint64(unsafe.Sizeof(r)), recordSize)

	var s oslot[msg]
	require.Equal(t, uintptr(8), unsafe.Offsetof(s.v))
	require.Zero(t, unsafe.Sizeof(s)%8)
	var s3 oslot[[3]byte]
	require.Equal(t, uintptr(16), unsafe.Sizeof(s3), "value words cover the slot exactly")

	// In a live segment: regions line-aligned.
	for _, o := range []Overflow{Block, Overwrite} {
		b, err := Create[msg](posixSpec(t), 16, WithOverflow(o))
		require.NoError(t, err)
		require.Zero(t, uintptr(unsafe.Pointer(b.ctl))%L)
		require.Zero(t, uintptr(unsafe.Pointer(&b.recs[0]))%L)
		require.Zero(t, uintptr(unsafe.Pointer(&b.recs[1].cursor))%L)
		if o == Block {
			require.Zero(t, uintptr(unsafe.Pointer(&b.slots[0]))%L)
		} else {
			require.Zero(t, uintptr(unsafe.Pointer(&b.oslots[0]))%L)
		}
		require.NoError(t, b.Close())
	}
}
