package shmmap

import (
	"github.com/shmkit/shmkit/internal/crashpoint"
)

// Update reads k's current value (ok false if absent) and, under the
// shard's lock, applies fn's decision: keep true stores the returned value
// (ErrFull if k is new and the shard is full), keep false deletes k. fn runs
// while the shard lock is held, so it must be quick and must not call
// methods of this map (it would deadlock on its own shard). If fn panics,
// nothing is changed and the lock is released.
func (m *Map[K, V]) Update(k K, fn func(v V, ok bool) (nv V, keep bool)) error {
	return m.update("update", k, fn)
}

// update is Update with its errors named as operation op.
func (m *Map[K, V]) update(op string, k K, fn func(v V, ok bool) (nv V, keep bool)) (err error) {
	if err := m.check(op); err != nil {
		return err
	}
	if m.fg.GuardsEachCall() {
		defer m.fg.Guard(&err, op, m.fg.Enable())
	}
	if err := m.updateErr(k, fn); err != nil {
		return m.wrap(op, err)
	}
	return nil
}

func (m *Map[K, V]) updateErr(k K, fn func(v V, ok bool) (nv V, keep bool)) error {
	tag, sh := m.tagOf(&k)
	m.touch(sh, tag)
	if err := m.lock(sh); err != nil {
		return err
	}
	defer m.unlock(sh)
	idx, found, err := m.find(sh, tag, &k)
	if err != nil {
		return err
	}
	var cur V
	if found {
		cur = m.slots[idx].Val
	}
	nv, keep := fn(cur, found)
	switch {
	case keep && found:
		m.writeUpdate(sh, idx, &nv)
	case keep:
		return m.writeInsert(sh, idx, tag, &k, &nv)
	case found:
		m.writeDelete(sh, idx)
	}
	return nil
}

// CompareAndSwap stores new for k if k is present with a value whose
// non-padding bytes equal old's (bitwise: float fields compare by their
// bits), and reports whether it did.
func (m *Map[K, V]) CompareAndSwap(k K, old, new V) (swapped bool, err error) {
	err = m.update("compare-and-swap", k, func(cur V, ok bool) (V, bool) {
		if ok && equalSpans(m.valSpans, &cur, &old) {
			swapped = true
			return new, true
		}
		return cur, ok
	})
	return swapped && err == nil, err
}

// CompareAndDelete deletes k if its value's non-padding bytes equal old's,
// and reports whether it did.
func (m *Map[K, V]) CompareAndDelete(k K, old V) (deleted bool, err error) {
	err = m.update("compare-and-delete", k, func(cur V, ok bool) (V, bool) {
		if ok && equalSpans(m.valSpans, &cur, &old) {
			deleted = true
			return cur, false
		}
		return cur, ok
	})
	return deleted && err == nil, err
}

// LoadOrStore returns the existing value for k (loaded true), or stores v
// and returns it (loaded false).
func (m *Map[K, V]) LoadOrStore(k K, v V) (actual V, loaded bool, err error) {
	err = m.update("load-or-store", k, func(cur V, ok bool) (V, bool) {
		if ok {
			actual, loaded = cur, true
			return cur, true
		}
		actual = v
		return v, true
	})
	if err != nil {
		var zero V
		return zero, false, err
	}
	return actual, loaded, nil
}

// Clear deletes every key, one shard at a time: each shard is emptied
// atomically (readers see it before or after), but the map as a whole is
// not, so keys stored concurrently into already-cleared shards survive. A
// Clear killed midway leaves some shards cleared; the shard it was working
// on is finished by its next writer. Clear always runs under the fault
// guard.
func (m *Map[K, V]) Clear() (err error) {
	if err := m.check("clear"); err != nil {
		return err
	}
	defer m.fg.Guard(&err, "clear", m.fg.Enable())
	for sh := range m.shards {
		if err := m.lock(sh); err != nil {
			return m.wrap("clear", err)
		}
		ctl := m.ctl(sh)
		ctl.RedoOp = opClear
		ctl.Seq.BeginWrite()
		m.clearShard(sh)
		ctl.Count.Store(0)
		ctl.Seq.EndWrite()
		ctl.RedoOp = opNone
		m.unlock(sh)
	}
	return nil
}

func (m *Map[K, V]) clearShard(sh uint64) {
	base := sh * m.perShard
	for i := range m.perShard {
		m.slots[base+i].Meta = 0
		if crashpoint.Enabled && i == m.perShard/2 {
			crashpoint.Hit("shmmap.clear-mid")
		}
	}
}
