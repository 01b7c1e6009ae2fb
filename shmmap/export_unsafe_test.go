package shmmap

import "unsafe"

// Offsets in a shard block (region 0) of the words hostile tests scribble,
// from the Go types. The Mutex's futex word is at offset 8 of the Mutex
// (asserted in package sync's layout test).
var (
	OffLockWord  = int(unsafe.Offsetof(shardCtlFields{}.Mu)) + 8
	OffOwnerPID  = int(unsafe.Offsetof(shardCtlFields{}.Mu)) + 20
	OffCount     = int(unsafe.Offsetof(shardCtlFields{}.Count))
	OffRedoOp    = int(unsafe.Offsetof(shardCtlFields{}.RedoOp))
	OffRedoSlot  = int(unsafe.Offsetof(shardCtlFields{}.RedoSlot))
	OffSeq       = int(unsafe.Offsetof(shardCtlFields{}.Seq))
	OffRedoEntry = ctlHeaderSize // the shard's redo entry: a slot, Meta first
)

// Redo record ops, for scribbling.
const (
	OpInsert = opInsert
	OpUpdate = opUpdate
	OpDelete = opDelete
)

// SlotSize is the size of one slot (region 1 holds shards * ShardSlots of
// them; Meta is each slot's first word).
func SlotSize[K comparable, V any]() int { return int(slotSize[K, V]()) }
