package shmmap

import (
	"testing"
	"unsafe"

	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	"github.com/stretchr/testify/require"
)

// TestLayout asserts the on-segment layout: it is part of the format every
// process must agree on, and atomics must be naturally aligned and on the
// lines the design says.
func TestLayout(t *testing.T) {
	var c shardCtl
	require.Equal(t, uintptr(ctlHeaderSize), unsafe.Sizeof(c))
	require.Equal(t, uintptr(0), unsafe.Offsetof(c.Mu))
	require.Equal(t, uintptr(32), unsafe.Sizeof(c.Mu))
	require.Equal(t, uintptr(32), unsafe.Offsetof(c.Count))
	require.Equal(t, uintptr(40), unsafe.Offsetof(c.RedoOp))
	require.Equal(t, uintptr(44), unsafe.Offsetof(c.RedoSlot))
	require.Equal(t, uintptr(48), unsafe.Offsetof(c.Seq))
	require.Equal(t, uintptr(8), unsafe.Sizeof(c.Seq))
	require.Equal(t, uintptr(56), unsafe.Sizeof(c.shardCtlFields))
	require.Zero(t, unsafe.Offsetof(c.Count)%8)
	require.Zero(t, unsafe.Offsetof(c.Seq)%8)
	// Shard blocks: header then redo entry, whole lines, so no two shards
	// share a line.
	require.Equal(t, uintptr(128), shardStride[uint64, uint64]())   // 64 + 24
	require.Equal(t, uintptr(256), shardStride[uint64, [64]byte]()) // 64 + 80
	require.Equal(t, uintptr(128), shardStride[uint64, [48]byte]()) // 64 + 64
	require.Zero(t, shardStride[[100]byte, [37]byte]()%layout.LineSize)

	type padded struct {
		A uint8
		B uint64
	}
	var s1 slot[padded, uint64]
	require.Equal(t, uintptr(0), unsafe.Offsetof(s1.Meta))
	require.Equal(t, uintptr(8), unsafe.Offsetof(s1.Key))
	require.Equal(t, uintptr(24), unsafe.Offsetof(s1.Val))
	require.Equal(t, uintptr(32), unsafe.Sizeof(s1))
	var s2 slot[uint64, [64]byte]
	require.Equal(t, uintptr(8), unsafe.Offsetof(s2.Key))
	require.Equal(t, uintptr(16), unsafe.Offsetof(s2.Val))
	require.Equal(t, uintptr(80), unsafe.Sizeof(s2))
	var s3 slot[uint8, uint8]
	require.Equal(t, uintptr(16), unsafe.Sizeof(s3))
	require.Equal(t, uintptr(8), unsafe.Alignof(s3))
}

func TestSpans(t *testing.T) {
	type padded struct {
		A uint8
		B uint64
		C uint16
	}
	sp, err := byteSpans(reflectType[padded](), false)
	require.NoError(t, err)
	require.Equal(t, []span{{0, 1}, {8, 10}}, sp)
	sp, err = byteSpans(reflectType[[2]padded](), false)
	require.NoError(t, err)
	require.Equal(t, []span{{0, 1}, {8, 10}, {24, 1}, {32, 10}}, sp)
	sp, err = byteSpans(reflectType[[4]uint32](), false)
	require.NoError(t, err)
	require.Equal(t, []span{{0, 16}}, sp)
	require.True(t, dense(sp, 16))
	_, err = byteSpans(reflectType[struct{ F float32 }](), false)
	require.ErrorIs(t, err, layout.ErrUnsupportedType)
	_, err = byteSpans(reflectType[struct{ F float32 }](), true)
	require.NoError(t, err)
}

func bytesOf[T any](p *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), unsafe.Sizeof(*p))
}

// TestOpenRejectsTamperedHeader: the geometry lives in the checksummed
// header, so a scribbled parameter fails Open with ErrCorrupt instead of
// producing a handle with out-of-range indices.
func TestOpenRejectsTamperedHeader(t *testing.T) {
	spec := "posix:/" + testproc.UniqueName("shmmap-hdr")
	t.Cleanup(func() { _ = segment.Remove(spec) })
	m, err := Create[uint64, uint64](spec, 100)
	require.NoError(t, err)
	defer m.Close()
	b := m.Segment().Raw().Bytes()
	off := unsafe.Offsetof(layout.Header{}.Params) + paramShardSlots*8
	b[off] ^= 0x40
	_, err = Open[uint64, uint64](spec)
	require.ErrorIs(t, err, layout.ErrCorrupt)
	b[off] ^= 0x40
	m2, err := Open[uint64, uint64](spec)
	require.NoError(t, err)
	require.NoError(t, m2.Close())
}
