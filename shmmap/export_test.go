package shmmap

import "reflect"

// ShardStride is the size of a shard block in region 0 for slot[K, V]
// (tests scribble lock words through it; the Mutex word is at offset 8).
func ShardStride[K comparable, V any]() int { return int(shardStride[K, V]()) }

func reflectType[T any]() reflect.Type { return reflect.TypeFor[T]() }

// LockedReads returns how many reads through m took the shard lock.
func (m *Map[K, V]) LockedReads() uint64 { return m.lockedReads.Load() }

// RepairCount returns how many repairs m made.
func (m *Map[K, V]) RepairCount() uint64 { return m.repairs.Load() }

// PendingRedo returns shard sh's redo record: the op's name ("" if none)
// and the value in its redo entry (meaningful for insert and update). For
// tests that stop or kill a writer mid-write: the record is the writer's,
// read without the lock.
func (m *Map[K, V]) PendingRedo(sh uint64) (op string, v V) {
	return opName(m.ctl(sh).RedoOp), m.redoEntry(sh).Val
}
