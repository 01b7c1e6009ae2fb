package shmmap

import (
	"errors"
	"fmt"

	shsync "github.com/shmkit/shmkit/sync"
)

// Redo record operations (shardCtl.RedoOp). Part of the format.
const (
	opNone   = 0
	opInsert = 0x494e5352 // "INSR"
	opUpdate = 0x55504454 // "UPDT"
	opDelete = 0x44454c54 // "DELT"
	opClear  = 0x434c5252 // "CLRR"
)

func opName(op uint32) string {
	switch op {
	case opNone:
		return ""
	case opInsert:
		return "insert"
	case opUpdate:
		return "update"
	case opDelete:
		return "delete"
	case opClear:
		return "clear"
	}
	return fmt.Sprintf("op(%#x)", op)
}

// settle is called by a reader that found shard sh's redo record set while
// the sequence count was even: a writer is between logging and writing, or
// died there with its mutation published but not applied. It takes the
// lock only if that needs no waiting (free, or its holder's death reported
// by the kernel), repairs, and reports whether it did; a live writer's
// shard is left alone. So a dead writer's last mutation becomes visible at
// the next read of its shard, not only at the next write.
//
// It runs under the fault guard: after a fault it reports true (the
// caller's next check of the handle returns the error).
func (m *Map[K, V]) settle(sh uint64) (settled bool) {
	if m.readOnly {
		return false
	}
	settled = true // what a fault leaves
	defer m.fg.Guard(nil, "load", m.fg.Enable())
	ctl := m.ctl(sh)
	got, err := ctl.Mu.TryLock()
	if !got {
		return false
	}
	if errors.Is(err, shsync.ErrOwnerDead) || ctl.RedoOp != opNone || ctl.Seq.Writing() {
		if rerr := m.repair(sh); errors.Is(rerr, ErrTruncated) {
			return true
		}
		if err != nil {
			_ = ctl.Mu.MarkConsistent()
		}
	}
	ctl.Mu.Unlock()
	return true
}

// repair completes the mutation recorded in shard sh's redo record, then
// recounts the shard and leaves its sequence count even. The caller holds
// the lock. Every step is idempotent, so a repairer killed here is repaired
// by the next locker.
//
// It runs under the fault guard.
func (m *Map[K, V]) repair(sh uint64) (err error) {
	defer m.fg.Guard(&err, "repair", m.fg.Enable())
	m.repairs.Add(1)
	ctl := m.ctl(sh)
	op := ctl.RedoOp
	rel := uint64(ctl.RedoSlot)
	base := sh * m.perShard
	ctl.Seq.BeginWrite() // keeps an odd count (a writer died mid-write) odd
	switch op {
	case opNone:
	case opInsert, opUpdate, opDelete:
		if rel >= m.perShard {
			err = fmt.Errorf("%w: shard %d: redo record names slot %d of %d", ErrCorrupt, sh, rel, m.perShard)
			break
		}
		// The entry and the slot's tag are copied out once: what is
		// checked is what is stored, whatever a peer writes meanwhile.
		r := *m.redoEntry(sh)
		s := &m.slots[base+rel]
		switch op {
		case opInsert:
			// The logged entry's tag must be its key's, and the slot
			// must be empty or already hold the entry (a replay):
			// the writer logged an empty slot and nobody else wrote
			// the shard since.
			tag, ksh := m.tagOf(&r.Key)
			if r.Meta != tag || ksh != sh {
				err = fmt.Errorf("%w: shard %d: redo entry tag %#x is not its key's (%#x of shard %d)", ErrCorrupt, sh, r.Meta, tag, ksh)
				break
			}
			if meta := s.Meta; meta != 0 && meta != tag {
				err = fmt.Errorf("%w: shard %d: redo insert into slot %d, which holds tag %#x", ErrCorrupt, sh, rel, meta)
				break
			}
			*s = r
		case opUpdate:
			if s.Meta == 0 {
				err = fmt.Errorf("%w: shard %d: redo update of empty slot %d", ErrCorrupt, sh, rel)
				break
			}
			s.Val = r.Val
		case opDelete:
			m.shiftFrom(sh, rel)
		}
	case opClear:
		m.clearShard(sh)
	default:
		err = fmt.Errorf("%w: shard %d: unknown redo op %#x", ErrCorrupt, sh, op)
	}
	ctl.Count.Store(m.countShard(sh))
	ctl.Seq.EndWrite()
	ctl.RedoOp = opNone
	return err
}

// countShard counts live slots of shard sh.
func (m *Map[K, V]) countShard(sh uint64) uint64 {
	base := sh * m.perShard
	var n uint64
	for i := range m.perShard {
		if m.slots[base+i].Meta != 0 {
			n++
		}
	}
	return n
}
