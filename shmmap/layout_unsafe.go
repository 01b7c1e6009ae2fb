package shmmap

import (
	"sync/atomic"
	"unsafe"

	"github.com/shmkit/shmkit/layout"
	shsync "github.com/shmkit/shmkit/sync"
)

// Region 0 holds one shard block per shard, each a multiple of LineSize
// bytes (shardStride): the shard's control header (shardCtl, 64 bytes) and
// right after it the shard's redo entry, a slot[K, V]. Everything a writer
// touches besides the slots themselves is in one block, on as few lines as
// the entry allows, and no two shards share a line.

// shardCtl is the control header of a shard block: its fields, padded to
// ctlHeaderSize with a length computed from the fields' own size (nothing
// here is added up by hand). Offsets are asserted in tests.
type shardCtl struct {
	shardCtlFields
	_ [ctlHeaderSize - unsafe.Sizeof(shardCtlFields{})]byte
}

// shardCtlFields are shardCtl's words.
type shardCtlFields struct {
	// Mu serializes writers (and readers that fell back to locking).
	Mu shsync.Mutex
	// Count is the number of live slots. Written under Mu; read without it
	// by Len (a hint) and recomputed from the slots by every repair.
	Count atomic.Uint64
	// RedoOp is the mutation in progress (op* constants), published
	// after RedoSlot and the shard's redo entry are written and cleared
	// after the mutation is complete: a repair replays whatever it finds.
	// RedoOp and RedoSlot are plain words: only the lock holder touches
	// them, or a repairer after the writer's death (whose stores are then
	// all visible, in program order: Go emits stores in order and a dead
	// CPU's stores drain before the kernel hands the lock on). Diagnostics
	// read them with atomic loads.
	RedoOp uint32
	// RedoSlot is the target slot (insert, update) or the current hole
	// of a backward-shift deletion, relative to the shard's first slot.
	RedoSlot uint32
	// Seq is the shard's seqlock count (64 bits, 8-aligned): odd while a
	// writer mutates slots. It shares the line with the lock: every write
	// takes both anyway.
	Seq shsync.SeqCount
}

// ctlHeaderSize is the size of shardCtl and the offset of the redo entry
// in a shard block.
const ctlHeaderSize = 64

// shardStride is the size of one shard block for slot[K, V].
func shardStride[K comparable, V any]() uintptr {
	n := ctlHeaderSize + slotSize[K, V]()
	return (n + layout.LineSize - 1) &^ (layout.LineSize - 1)
}

// ctl returns shard sh's control header. sh < shards (it comes from the
// top bits of a tag, or a loop over shards), so the index is in range.
func (m *Map[K, V]) ctl(sh uint64) *shardCtl {
	return (*shardCtl)(unsafe.Pointer(&m.shardMem[sh*m.stride]))
}

// redoEntry returns shard sh's redo entry.
func (m *Map[K, V]) redoEntry(sh uint64) *slot[K, V] {
	b := m.shardMem[sh*m.stride+ctlHeaderSize : (sh+1)*m.stride]
	return (*slot[K, V])(unsafe.Pointer(&b[0]))
}

// slot is one entry of a shard's open-addressing array, and also the shape
// of a shard's redo entry.
type slot[K comparable, V any] struct {
	// Meta is 0 for an empty slot, else the key's tag: its 64-bit hash
	// with bit 0 forced to 1. The tag names the shard (top bits) and the
	// home slot (bits 1..), so deletion can shift entries without
	// rehashing keys, and Get compares a key only when the tag matches.
	Meta uint64
	Key  K
	Val  V
}

func slotSize[K comparable, V any]() uintptr { return unsafe.Sizeof(slot[K, V]{}) }

func slotAlign[K comparable, V any]() uintptr { return unsafe.Alignof(slot[K, V]{}) }

// table is a map's shard blocks and slots seen without their key and value
// types: the shard stride and slot size come from the region sizes, which
// attach (typed) or Inspect (untyped) have checked. Statistics and tools use
// it; the typed hot paths do not.
type table struct {
	shardMem []byte
	stride   uint64
	slotMem  []byte
	slotSize uint64
	shards   uint64
	perShard uint64
}

// ctl returns shard sh's control header; sh < t.shards.
func (t *table) ctl(sh uint64) *shardCtl {
	return (*shardCtl)(unsafe.Pointer(&t.shardMem[sh*t.stride]))
}

// meta loads the Meta word of slot i (i < shards*perShard); Meta is the
// first field of every slot, so its offset does not depend on K or V.
func (t *table) meta(i uint64) uint64 {
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(&t.slotMem[i*t.slotSize+uint64(unsafe.Offsetof(slot[uint8, uint8]{}.Meta))])))
}
