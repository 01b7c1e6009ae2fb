package shmmap

import (
	"sync/atomic"
)

const (
	// readAttempts bounds optimistic (lock-free) read attempts before a
	// reader takes the shard lock. Each attempt may itself wait a while
	// (SeqCount.BeginRead yields while a write is in progress).
	readAttempts = 4
	// readOnlyAttempts is the bound for read-only handles, which have no
	// lock to fall back on.
	readOnlyAttempts = 64
)

// Get returns the value stored for k. It never blocks behind a healthy
// writer for more than a few of its critical sections and never returns a
// torn value; see Load for errors.
func (m *Map[K, V]) Get(k K) (v V, ok bool) {
	if m.fg.GuardsEachCall() {
		return m.getGuarded(k)
	}
	// The first optimistic attempt, written out flat in Get itself: this
	// is the hot path of every reader, and calls, copies and a deferred
	// call's bookkeeping cost here (at 1 M keys each instruction between
	// one Get's cache miss and the next Get's counts, as it limits how
	// many Gets the CPU overlaps).
	if m.closed.Load() || m.fg.Faulted() {
		return v, false
	}
	var tag uint64
	if m.h.short {
		tag = m.h.hash8(keyWord(&k)) | 1
	} else {
		tag = hashKey(&m.h, &k) | 1
	}
	sh := tag >> m.shardShift
	ctl := m.ctl(sh)
	// An odd count (a write in progress) goes to load, which waits it out.
	if start := ctl.Seq.BeginReadNow(); start&1 == 0 {
		base := sh * m.perShard
		i := m.home(tag)
		// probe, written out (keep in step with probe): the call costs
		// ~20% of a cache-resident Get.
		for range m.perShard {
			s := &m.slots[base+i]
			meta := s.Meta
			if meta == 0 {
				break
			}
			if meta == tag && s.Key == k {
				v, ok = s.Val, true
				break
			}
			if i++; i == m.perShard {
				i = 0
			}
		}
		if !ctl.Seq.Retry(start) && atomic.LoadUint32(&ctl.RedoOp) == opNone {
			return v, ok
		}
	}
	v, ok, _ = m.load(&k)
	return v, ok
}

// getGuarded is Get on a WithFaultGuard handle: load's steps (the same
// optimistic attempts, then the lock) under the fault guard, kept out of
// Get's own frame (see above).
func (m *Map[K, V]) getGuarded(k K) (v V, ok bool) {
	defer m.guardRead(&v, &ok, nil, "get", m.fg.Enable())
	if m.closed.Load() || m.fg.Faulted() {
		return v, false
	}
	v, ok, _ = m.load(&k)
	return v, ok
}

// Load is Get that also reports errors: ErrClosed, an error from the
// lock fallback (ErrNotRecoverable, ErrCorrupt from a repair), or
// ErrTruncated (see WithFaultGuard).
func (m *Map[K, V]) Load(k K) (v V, ok bool, err error) {
	if err := m.check("load"); err != nil {
		return v, false, err
	}
	if m.fg.GuardsEachCall() {
		defer m.guardRead(&v, &ok, &err, "load", m.fg.Enable())
	}
	return m.load(&k)
}

// load is Load past its checks, under its caller's fault guard if any:
// optimistic attempts, then the shard lock.
func (m *Map[K, V]) load(k *K) (v V, ok bool, err error) {
	tag, sh := m.tagOf(k)
	ctl := m.ctl(sh)
	seq := &ctl.Seq
	attempts := readAttempts
	if m.readOnly {
		attempts = readOnlyAttempts
	}
	for range attempts {
		start := seq.BeginRead()
		if start&1 != 0 {
			continue
		}
		var idx uint64
		if idx, ok = m.probe(sh, tag, k); ok {
			v = m.slots[idx].Val
		} else {
			v = *new(V)
		}
		if seq.Retry(start) {
			continue
		}
		if atomic.LoadUint32(&ctl.RedoOp) == opNone || !m.settle(sh) {
			return v, ok, nil
		}
		// A dead writer's logged mutation was just completed: read again.
	}
	if v, ok, err = m.loadLocked(sh, tag, k); err != nil {
		err = m.wrap("load", err)
	}
	return v, ok, err
}

// probe looks k up in shard sh without the lock and returns the global
// index of its slot. The result (and the value then copied from the slot)
// is meaningful only if the shard's sequence count did not move meanwhile;
// the index is always in range.
func (m *Map[K, V]) probe(sh, tag uint64, k *K) (uint64, bool) {
	base := sh * m.perShard
	i := m.home(tag)
	for range m.perShard {
		s := &m.slots[base+i]
		meta := s.Meta
		if meta == 0 {
			break
		}
		if meta == tag && s.Key == *k {
			return base + i, true
		}
		i = m.next(i)
	}
	return 0, false
}

// loadLocked is the locked read path, always under the fault guard.
func (m *Map[K, V]) loadLocked(sh, tag uint64, k *K) (v V, ok bool, err error) {
	defer m.guardRead(&v, &ok, &err, "load", m.fg.Enable())
	m.lockedReads.Add(1)
	if err := m.lock(sh); err != nil {
		return v, false, err
	}
	defer m.unlock(sh)
	idx, found, err := m.find(sh, tag, k)
	if err != nil || !found {
		return v, false, err
	}
	return m.slots[idx].Val, true, nil
}
