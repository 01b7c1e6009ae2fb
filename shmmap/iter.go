package shmmap

import (
	"iter"
	"runtime"
)

// entry is a key/value pair copied out of a shard.
type entry[K comparable, V any] struct {
	k K
	v V
}

// All iterates over the map one shard at a time. Each shard is copied out
// atomically (a seqlock snapshot, or under the shard lock if writers keep
// interfering) and then yielded, so the pairs of one shard are a state that
// existed; different shards are snapshots of different moments. A key
// stored or deleted during the iteration may or may not be seen; no key is
// yielded twice. The body may call any method of the map. Shards that
// cannot be read (lock not recoverable, closed map) are skipped. A memory
// fault (a truncated segment) ends the iteration; the next call of the
// handle returns its error.
func (m *Map[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		var buf []entry[K, V]
		for sh := range m.shards {
			if m.check("all") != nil {
				return
			}
			var err error
			buf, err = m.snapshot(sh, buf[:0])
			if err != nil {
				if m.fg.Faulted() {
					return
				}
				continue
			}
			for _, e := range buf {
				if !yield(e.k, e.v) {
					return
				}
			}
		}
	}
}

// snapshot appends the live entries of shard sh to buf, under the fault
// guard.
func (m *Map[K, V]) snapshot(sh uint64, buf []entry[K, V]) (out []entry[K, V], err error) {
	defer m.fg.Guard(&err, "all", m.fg.Enable())
	base := sh * m.perShard
	seq := &m.ctl(sh).Seq
	copyOut := func(buf []entry[K, V]) []entry[K, V] {
		for i := range m.perShard {
			s := &m.slots[base+i]
			if s.Meta != 0 {
				buf = append(buf, entry[K, V]{s.Key, s.Val})
			}
		}
		return buf
	}
	for range readAttempts {
		start := seq.BeginRead()
		if start&1 != 0 {
			continue
		}
		out := copyOut(buf[:0])
		if !seq.Retry(start) {
			return out, nil
		}
		runtime.Gosched()
	}
	m.lockedReads.Add(1)
	if err := m.lock(sh); err != nil {
		return buf, err
	}
	defer m.unlock(sh)
	return copyOut(buf[:0]), nil
}
