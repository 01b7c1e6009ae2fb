package shmmap

import (
	"fmt"
	"math"
	"math/bits"

	"github.com/shmkit/shmkit/layout"
)

// Header parameters (layout.Header.Params). Part of the format.
const (
	paramScheme     = 0 // hash scheme; hashSchemeXXH64Prefix
	paramSeed       = 1 // hash seed
	paramShardBits  = 2 // log2(shards)
	paramShardSlots = 3 // slots per shard
	paramShardLimit = 4 // max live keys per shard

	hashSchemeXXH64Prefix = 1

	maxShardBits     = 16
	defaultShardBits = 8
	minShardSlots    = 8
	maxShardSlots    = 1 << 30

	// Max load factor: a shard accepts loadNum/loadDen of its slots.
	loadNum, loadDen = 3, 4
)

// geometry is the shape of a table.
type geometry struct {
	shardBits uint
	perShard  uint64 // slots per shard
	limit     uint64 // max live keys per shard
}

// plan sizes a table for capacity keys in 2^shardBits shards.
func plan(capacity int, shards int, shardsSet bool) (geometry, error) {
	if capacity < 1 || capacity > 1<<40 {
		return geometry{}, fmt.Errorf("%w: %d out of range [1, 2^40]", ErrCapacity, capacity)
	}
	var g geometry
	if shardsSet {
		if shards < 1 || shards > 1<<maxShardBits || shards&(shards-1) != 0 {
			return geometry{}, fmt.Errorf("%w: %d shards: want a power of two in [1, %d]", ErrCapacity, shards, 1<<maxShardBits)
		}
		g.shardBits = uint(bits.TrailingZeros(uint(shards)))
	} else {
		// About 1024 keys per shard, at most 256 shards: enough shards
		// that writers in different processes rarely meet, few enough
		// that the per-shard slack stays small.
		for g.shardBits < defaultShardBits && capacity>>(g.shardBits+1) >= 1024 {
			g.shardBits++
		}
	}
	per := float64(capacity) / float64(uint64(1)<<g.shardBits)
	need := per
	if g.shardBits > 0 {
		need = math.Ceil(per + 6*math.Sqrt(per) + 8)
	}
	// Shard sizes need not be powers of two (home slots come from a
	// multiply-shift, not a mask), so the table is capacity * 4/3 plus
	// the slack, not rounded up to the next power of two.
	slots := math.Ceil(need * loadDen / loadNum)
	slots = max(minShardSlots, math.Ceil(slots/8)*8)
	if slots > maxShardSlots {
		return geometry{}, fmt.Errorf("%w: %d needs shards of more than %d slots: use more shards", ErrCapacity, capacity, maxShardSlots)
	}
	g.perShard = uint64(slots)
	g.limit = g.perShard * loadNum / loadDen
	return g, nil
}

// checkedGeometry validates the map parameters in a segment's header (not
// the region sizes, which depend on K and V) and returns the geometry.
func checkedGeometry(s *layout.Segment) (geometry, error) {
	h := s.Header()
	p := h.Params
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
	if p[paramScheme] != hashSchemeXXH64Prefix {
		return geometry{}, corrupt("unknown hash scheme %d", p[paramScheme])
	}
	if p[paramShardBits] > maxShardBits || p[paramShardSlots] < minShardSlots || p[paramShardSlots] > maxShardSlots {
		return geometry{}, corrupt("geometry 2^%d shards of %d slots out of range", p[paramShardBits], p[paramShardSlots])
	}
	g := geometry{shardBits: uint(p[paramShardBits]), perShard: p[paramShardSlots], limit: p[paramShardLimit]}
	shards := uint64(1) << g.shardBits
	if g.limit < 1 || g.limit >= g.perShard {
		return geometry{}, corrupt("shard limit %d for %d slots (an empty slot must always remain)", g.limit, g.perShard)
	}
	if h.Capacity < 1 || h.Capacity > shards*g.limit {
		return geometry{}, corrupt("capacity %d for %d shards of limit %d", h.Capacity, shards, g.limit)
	}
	if s.NumRegions() != 2 {
		return geometry{}, corrupt("%d regions, want 2", s.NumRegions())
	}
	return g, nil
}

// home is the slot (relative to its shard) where the key with tag starts
// probing: bits 1..32 of the tag mapped onto [0, perShard) by
// multiply-shift. The shard comes from the top bits, so the two never
// overlap.
func (m *Map[K, V]) home(tag uint64) uint64 { return homeSlot(tag, m.perShard) }

func homeSlot(tag, perShard uint64) uint64 { return (tag >> 1 & 0xffffffff) * perShard >> 32 }

// next is the slot after i in its shard's cyclic probe order.
func (m *Map[K, V]) next(i uint64) uint64 {
	if i++; i == m.perShard {
		return 0
	}
	return i
}

// dist is the cyclic distance from slot a forward to slot b (both < perShard).
func (m *Map[K, V]) dist(a, b uint64) uint64 { return cyclicDist(a, b, m.perShard) }

func cyclicDist(a, b, perShard uint64) uint64 {
	if b >= a {
		return b - a
	}
	return b + perShard - a
}
