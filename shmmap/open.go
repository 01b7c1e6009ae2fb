package shmmap

import (
	"fmt"
	"math/rand/v2"
	"reflect"

	"github.com/shmkit/shmkit/internal/faultguard"
	"github.com/shmkit/shmkit/internal/mem"
	"github.com/shmkit/shmkit/internal/options"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
)

// typeSpans checks K and V against the type rules and returns the
// non-padding spans of both.
func typeSpans[K comparable, V any]() (kt, vt reflect.Type, ks, vs []span, err error) {
	kt, vt = reflect.TypeFor[K](), reflect.TypeFor[V]()
	for _, t := range []reflect.Type{kt, vt} {
		if _, err := layout.Describe(t); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	if ks, err = byteSpans(kt, false); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("key type %s: %w", kt, err)
	}
	if vs, err = byteSpans(vt, true); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("value type %s: %w", vt, err)
	}
	return kt, vt, ks, vs, nil
}

// Create makes a new shared map at spec (see package segment for spec
// strings) sized for capacity keys. It fails with fs.ErrExist if the
// segment exists, and with ErrCapacity if capacity (or WithShards) is out
// of range. The caller should Remove(spec) when the map is no longer
// needed; Close only unmaps.
func Create[K comparable, V any](spec string, capacity int, opts ...Option) (*Map[K, V], error) {
	cfg, c, err := buildConfig("create", spec, opts)
	if err != nil {
		return nil, err
	}
	m, err := create[K, V](spec, capacity, cfg, c)
	return m, layout.WrapOp("shmmap", "create", spec, err)
}

func create[K comparable, V any](spec string, capacity int, cfg options.Config, c mapSettings) (*Map[K, V], error) {
	kt, vt, ks, vs, err := typeSpans[K, V]()
	if err != nil {
		return nil, err
	}
	g, err := plan(capacity, c.shards, c.shardsSet)
	if err != nil {
		return nil, err
	}
	seed := c.seed
	if !c.seedSet {
		seed = rand.Uint64()
	}
	shards := uint64(1) << g.shardBits
	ss := uint64(slotSize[K, V]())
	total := shards * g.perShard
	if total > (1<<46)/ss {
		return nil, fmt.Errorf("%w: %d: %d slots of %d bytes is too large", ErrCapacity, capacity, total, ss)
	}
	d := layout.Desc{
		Kind:     layout.KindMap,
		Types:    []reflect.Type{kt, vt},
		Capacity: uint64(capacity),
		Regions: []layout.Region{
			{Size: shards * uint64(shardStride[K, V]())},
			{Size: total * ss},
		},
	}
	d.Params[paramScheme] = hashSchemeXXH64Prefix
	d.Params[paramSeed] = seed
	d.Params[paramShardBits] = uint64(g.shardBits)
	d.Params[paramShardSlots] = g.perShard
	d.Params[paramShardLimit] = g.limit
	// A new segment is zero-filled, and zero is the empty table: empty
	// slots, unlocked mutexes, even sequence counts, no redo records.
	s, err := layout.Create(spec, d, nil, cfg.Layout...)
	if err != nil {
		return nil, err
	}
	m, err := attach[K, V](s, ks, vs, c.faultGuard)
	if err != nil {
		_ = s.Close()
		_ = segment.Remove(spec)
		return nil, err
	}
	m.lockTimeout = c.lockTimeout
	return m, nil
}

// Open attaches an existing map made by Create with the same K and V. It
// fails with ErrTypeMismatch if the segment holds other types or another
// kind of structure, and with ErrCorrupt if its geometry does not validate.
func Open[K comparable, V any](spec string, opts ...Option) (*Map[K, V], error) {
	cfg, c, err := buildConfig("open", spec, opts)
	if err != nil {
		return nil, err
	}
	m, err := open[K, V](spec, cfg, c)
	return m, layout.WrapOp("shmmap", "open", spec, err)
}

func open[K comparable, V any](spec string, cfg options.Config, c mapSettings) (*Map[K, V], error) {
	kt, vt, ks, vs, err := typeSpans[K, V]()
	if err != nil {
		return nil, err
	}
	s, err := layout.Open(spec, layout.Expect{Kind: layout.KindMap, Types: []reflect.Type{kt, vt}}, cfg.Layout...)
	if err != nil {
		return nil, err
	}
	m, err := attach[K, V](s, ks, vs, c.faultGuard)
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	m.lockTimeout = c.lockTimeout
	return m, nil
}

// attach validates the map geometry in the (already validated, private)
// header copy against the regions and builds the handle. It runs under the
// fault guard (the mapping may already be truncated).
func attach[K comparable, V any](s *layout.Segment, ks, vs []span, guardEachCall bool) (m *Map[K, V], err error) {
	var fg faultguard.Latch
	fg.Init("shmmap", s.Raw().Spec().String(), s.Raw(), false)
	defer func(a faultguard.Armed) {
		if fg.Catch(recover(), a, &err, "attach") {
			m = nil
		}
	}(fg.Enable())
	h := s.Header()
	p := h.Params
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
	g, err := checkedGeometry(s)
	if err != nil {
		return nil, err
	}
	shardBits, perShard := g.shardBits, g.perShard
	shards := uint64(1) << shardBits
	ss, stride := uint64(slotSize[K, V]()), uint64(shardStride[K, V]())
	want := [2]uint64{shards * stride, shards * perShard * ss}
	for i, w := range want {
		if got := uint64(len(s.Region(i))); got != w {
			return nil, corrupt("region %d is %d bytes, geometry needs %d", i, got, w)
		}
	}
	if slotAlign[K, V]() > 64 || mem.Addr(s.Region(0))%layout.LineSize != 0 {
		return nil, corrupt("shard blocks misaligned")
	}
	slots, err := layout.ViewSlice[slot[K, V]](s, 1, int(shards*perShard))
	if err != nil {
		return nil, fmt.Errorf("slots: %w", err)
	}
	var k K
	m = &Map[K, V]{
		seg:        s,
		shardMem:   s.Region(0),
		shards:     shards,
		stride:     stride,
		slots:      slots,
		h:          newHasher(p[paramSeed], reflect.TypeOf(k).Size(), ks),
		valSpans:   vs,
		shardShift: 64 - shardBits,
		perShard:   perShard,
		limit:      p[paramShardLimit],
		capacity:   int(h.Capacity),
		seed:       p[paramSeed],
		readOnly:   s.Raw().ReadOnly(),
		spec:       s.Raw().Spec().String(),
	}
	m.fg.Init("shmmap", m.spec, s.Raw(), guardEachCall)
	return m, nil
}
