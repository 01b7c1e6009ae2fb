package shmmap

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/shmkit/shmkit/internal/faultguard"
	"github.com/shmkit/shmkit/layout"
	shsync "github.com/shmkit/shmkit/sync"
)

// Stats describes a map for diagnostics (shmctl). It is gathered without
// locks, so under concurrent writes it is approximate.
type Stats struct {
	Len        int // live keys
	Capacity   int // the capacity asked for at Create
	Shards     int
	ShardSlots int // slots per shard
	ShardLimit int // max live keys per shard (3/4 of ShardSlots)
	Slots      int // Shards * ShardSlots
	// Tombstones is always 0: deletion shifts entries back (see the
	// package documentation), it never leaves tombstones.
	Tombstones int
	// LongestProbe is the most slots any live key's lookup inspects (1:
	// the key sits in its home slot).
	LongestProbe int
	// MeanProbe is the average of that over live keys.
	MeanProbe float64
	Seed      uint64
	// Repairs counts shard repairs (after a dead writer) made through
	// this handle.
	Repairs uint64
	// LockedReads counts reads (Get, All's shard snapshots) through this
	// handle that gave up on the lock-free path and took the shard lock.
	LockedReads uint64
	Shard       []ShardStats
}

// ShardStats describes one shard.
type ShardStats struct {
	Len          int
	LongestProbe int
	// Writing: the sequence count is odd: a write is in progress, or its
	// writer died mid-write and the shard awaits repair by the next locker.
	Writing bool
	// PendingOp names the mutation in the redo record ("" if none): in
	// progress, or left by a dead writer for the next locker to finish.
	PendingOp string
	// Lock is the writer lock's state: holder, dead owner, waiters.
	Lock shsync.MutexState
}

// Stats scans the map and returns its statistics.
//
// It runs under the fault guard: a truncated segment gives ErrTruncated.
func (m *Map[K, V]) Stats() (st Stats, err error) {
	if err := m.check("stats"); err != nil {
		return Stats{}, err
	}
	defer func(a faultguard.Armed) {
		if m.fg.Catch(recover(), a, &err, "stats") {
			st = Stats{}
		}
	}(m.fg.Enable())
	t := table{
		shardMem: m.shardMem, stride: m.stride,
		slotMem: m.seg.Region(1), slotSize: uint64(slotSize[K, V]()),
		shards: m.shards, perShard: m.perShard,
	}
	st = t.stats(m.capacity, int(m.limit), m.seed)
	st.Repairs = m.repairs.Load()
	st.LockedReads = m.lockedReads.Load()
	return st, nil
}

// Inspect reports the statistics of a map segment of any key and value
// types, opened by a tool with layout.Open(spec, layout.Expect{Kind:
// layout.KindMap}) (read-only is enough). It takes no lock and changes
// nothing; Repairs and LockedReads, which count per handle, are zero.
func Inspect(s *layout.Segment) (st Stats, err error) {
	spec := s.Raw().Spec().String()
	var fg faultguard.Latch
	fg.Init("shmmap", spec, s.Raw(), false)
	defer func(a faultguard.Armed) {
		if fg.Catch(recover(), a, &err, "inspect") {
			st = Stats{}
		}
	}(fg.Enable())
	st, err = inspect(s)
	return st, layout.WrapOp("shmmap", "inspect", spec, err)
}

func inspect(s *layout.Segment) (Stats, error) {
	h := s.Header()
	if h.Kind != layout.KindMap {
		return Stats{}, fmt.Errorf("%w: segment holds a %s, not a map", ErrTypeMismatch, h.Kind)
	}
	g, err := checkedGeometry(s)
	if err != nil {
		return Stats{}, err
	}
	shards := uint64(1) << g.shardBits
	slots := shards * g.perShard
	r0, r1 := uint64(len(s.Region(0))), uint64(len(s.Region(1)))
	t := table{shardMem: s.Region(0), slotMem: s.Region(1), shards: shards, perShard: g.perShard}
	t.stride, t.slotSize = r0/shards, r1/slots
	if r0%shards != 0 || t.stride%layout.LineSize != 0 || t.stride < ctlHeaderSize+t.slotSize ||
		r1%slots != 0 || t.slotSize < 8 || t.slotSize%8 != 0 {
		return Stats{}, fmt.Errorf("%w: regions of %d and %d bytes do not fit %d shards of %d slots",
			ErrCorrupt, r0, r1, shards, g.perShard)
	}
	return t.stats(int(h.Capacity), int(g.limit), h.Params[paramSeed]), nil
}

// stats gathers Stats without locks (approximate under concurrent writes).
// Every index comes from the loop bounds, never from shared memory.
func (t *table) stats(capacity, limit int, seed uint64) Stats {
	st := Stats{
		Capacity:   capacity,
		Shards:     int(t.shards),
		ShardSlots: int(t.perShard),
		ShardLimit: limit,
		Slots:      int(t.shards * t.perShard),
		Seed:       seed,
		Shard:      make([]ShardStats, int(t.shards)),
	}
	var probes uint64
	for sh := range t.shards {
		ctl := t.ctl(sh)
		ss := ShardStats{
			Writing:   ctl.Seq.Writing(),
			PendingOp: opName(atomic.LoadUint32(&ctl.RedoOp)),
			Lock:      ctl.Mu.State(),
		}
		base := sh * t.perShard
		for j := range t.perShard {
			meta := t.meta(base + j)
			if meta == 0 {
				continue
			}
			ss.Len++
			p := int(cyclicDist(homeSlot(meta, t.perShard), j, t.perShard)) + 1
			probes += uint64(p)
			ss.LongestProbe = max(ss.LongestProbe, p)
		}
		st.Len += ss.Len
		st.LongestProbe = max(st.LongestProbe, ss.LongestProbe)
		st.Shard[sh] = ss
	}
	if st.Len > 0 {
		st.MeanProbe = float64(probes) / float64(st.Len)
	}
	return st
}

// Check walks every shard under its lock (repairing shards left by dead
// writers on the way) and verifies the table's invariants: every live slot
// holds a key whose hash is its tag, in its own shard, reachable from its
// home slot without crossing an empty slot; no key appears twice; each
// shard's count matches its live slots and its limit; the sequence count is
// even and no redo record is pending. It returns nil or an error wrapping
// ErrCorrupt that lists the first problems found.
//
// It runs under the fault guard: a truncated segment gives ErrTruncated.
func (m *Map[K, V]) Check() (err error) {
	if err := m.check("check"); err != nil {
		return err
	}
	defer m.fg.Guard(&err, "check", m.fg.Enable())
	var errs []error
	for sh := range m.shards {
		if m.fg.Faulted() {
			return m.fg.Err()
		}
		if err := m.lock(sh); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, m.checkShard(sh)...)
		m.unlock(sh)
		if len(errs) > 8 {
			break
		}
	}
	if m.fg.Faulted() {
		return m.fg.Err()
	}
	if len(errs) == 0 {
		return nil
	}
	return m.wrap("check", errors.Join(errs...))
}

// checkShard verifies locked shard sh.
func (m *Map[K, V]) checkShard(sh uint64) []error {
	var errs []error
	bad := func(format string, args ...any) {
		if len(errs) < 4 {
			errs = append(errs, fmt.Errorf("%w: shard %d: %s", ErrCorrupt, sh, fmt.Sprintf(format, args...)))
		}
	}
	ctl := m.ctl(sh)
	if ctl.Seq.Writing() {
		bad("sequence count odd under the lock")
	}
	if op := ctl.RedoOp; op != opNone {
		bad("redo record %s pending under the lock", opName(op))
	}
	base := sh * m.perShard
	seen := make(map[K]uint64)
	var live uint64
	for j := range m.perShard {
		s := &m.slots[base+j]
		meta := s.Meta
		if meta == 0 {
			continue
		}
		live++
		k := s.Key
		tag, ksh := m.tagOf(&k)
		if tag != meta {
			bad("slot %d: tag %#x, key hashes to %#x", j, meta, tag)
			continue
		}
		if ksh != sh {
			bad("slot %d: key belongs to shard %d", j, ksh)
			continue
		}
		if prev, dup := seen[k]; dup {
			bad("slot %d: key %v also in slot %d", j, k, prev)
		}
		seen[k] = j
		for i := m.home(tag); i != j; i = m.next(i) {
			if m.slots[base+i].Meta == 0 {
				bad("slot %d: key unreachable: empty slot %d between it and its home %d", j, i, m.home(tag))
				break
			}
		}
	}
	if n := ctl.Count.Load(); n != live {
		bad("count %d, %d live slots", n, live)
	}
	if live > m.limit {
		bad("%d live slots exceed the limit %d", live, m.limit)
	}
	return errs
}
