// Package shmmap is a fixed-capacity hash table in a shared-memory segment:
// many processes read and write one Map[K, V] with no server in between.
//
// # Design
//
// Shards. The table is split into 2^b independent shards (by default about
// 1024 keys per shard, at most 256 shards; WithShards overrides). A key's 64-bit hash picks its
// shard by its top bits; each shard is its own open-addressing array with
// its own robust writer lock, sequence count, live count and redo record.
// Probes never leave a shard, so one shard lock covers every slot a
// mutation touches and readers of other shards are never disturbed.
//
// Hash. hash(k) = xxhash64(LE64(seed) || the non-padding bytes of k). The
// seed is chosen at Create (random, or WithSeed) and stored in the segment
// header, so every process computes the same hash (hash/maphash cannot: its
// seeds are per process). Padding bytes are left out because a struct key
// can carry garbage there; keys are then compared with ==, which also
// ignores padding. Float and complex key fields are rejected with
// ErrUnsupportedType: == on them is not bitwise (+0 == -0 with different
// bytes, NaN != NaN), so a key could hash two ways or never be found; key on
// math.Float64bits instead.
//
// Slots and deletion. Linear probing with backward-shift deletion: deleting
// a key moves later entries of its cluster back into the hole, so the shard
// is always exactly as if the live keys had been inserted with no deletions
// in between. There are no tombstones, so probe lengths depend only on the
// load factor and never degrade under insert/delete churn, and no periodic
// rehash (with its own crash window) is needed. Each slot stores the key's
// tag (hash | 1) next to the key: the shift computes home slots from it
// without rehashing, and lookups compare keys only when tags match.
//
// Capacity. Each shard accepts at most 3/4 of its slots (the maximum load
// factor; linear probing then expects ~2.5 probes for a hit and ~8.5 for a
// miss). Create sizes shards so that capacity keys spread by the hash fit
// with overwhelming probability: each shard's limit is the per-shard mean
// plus six standard deviations plus 8, and it has 4/3 of that in slots
// (rounded up to a multiple of 8; shard sizes need not be powers of two, a
// key's home slot comes from a multiply-shift of its hash). So Len can go
// somewhat past capacity, and Put returns ErrFull when the key's own shard
// is at its limit. With one shard (WithShards(1)) the limit is exactly
// 3/4 of the slots, at least capacity. A slot is an 8-byte tag, K and V
// (Go-aligned): 1 M keys of 8 bytes with 64-byte values take 122 MB.
//
// Readers. Get normally takes no lock and makes no system call. It reads
// the shard's sequence count, probes and copies the value out, and rereads
// the count; if a writer was active it retries. After readAttempts failed
// attempts (a writer is descheduled, or died mid-write leaving the count
// odd) it takes the shard lock, which blocks only behind a live writer and
// goes through the repair path below if the writer died; then it reads
// under the lock. So a Get never returns a torn value and never spins
// forever; it waits only as long as a live writer holds its shard (a
// writer stopped with SIGSTOP mid-write stalls that shard's readers until
// it continues or dies). All snapshots one shard at a time the same way.
// The copy is made with plain loads; SeqCount.Retry orders them before its
// re-read of the count (a no-op on amd64, STLR+LDAR on arm64: see
// shmkit/sync's SeqCount), and SeqCount.BeginWrite orders the odd count
// before a writer's plain slot stores.
//
// Writers and crashes. A mutation is described in the shard's redo record
// (op, slot, and a full copy of the new entry) before any slot changes:
//
//	write redo entry, RedoSlot; RedoOp = op   (publish the intent)
//	seq.BeginWrite; mutate slots, Count; seq.EndWrite
//	RedoOp = none                              (done)
//
// Every op is idempotent when replayed from its record: insert and update
// copy the logged entry or value into the logged slot; delete runs the
// backward shift from the hole recorded in RedoSlot, which is advanced after
// each moved entry (rerunning a shift from an already-filled hole finds the
// same entry to move, or nothing); clear empties the shard. A writer
// SIGKILLed at any instruction leaves the lock word to the kernel's robust
// list: the next locker (writer, or a reader that fell back) gets
// ErrOwnerDead, replays the record under an odd sequence count, recounts
// the shard, makes the count even and marks the lock consistent. So the
// in-flight mutation of a killed writer is either fully applied (its record
// was published) or not at all; nothing else is ever lost, and the table is
// never left torn. A repairer killed mid-repair is repaired in turn.
// A published mutation takes effect when it is repaired, normally by the
// next access to the shard: a reader that finds the count odd falls back to
// the lock; one that finds the count even but the redo record set tries the
// lock without waiting, which succeeds at once if the kernel has reported
// the holder dead, and finishes the mutation itself.
//
// Never trusting the segment. Every index read from shared memory is masked
// or checked against the shard size, every probe and shift is bounded by
// the shard size, and Check walks the whole table. A blocked lock checks
// every quarter second that the lock word names a live thread of the
// process recorded as its holder (a scribbled word naming some unrelated
// live thread would otherwise never be released) and gives up after the
// lock timeout. A peer that scribbles garbage can make operations return
// ErrCorrupt or odd values, but never panic, index out of range or hang.
//
// Concurrency. A Map handle may be used from any number of goroutines, and
// any number of processes may Open the same segment. Close must not race
// with other calls on the same handle. Values are returned by copy: nothing
// returned aliases shared memory.
package shmmap

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/internal/mem"
	"github.com/shmkit/shmkit/internal/proc"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	shsync "github.com/shmkit/shmkit/sync"
)

// Sentinel errors, re-exported from package layout; test with errors.Is.
var (
	ErrClosed          = layout.ErrClosed
	ErrFull            = layout.ErrFull
	ErrCorrupt         = layout.ErrCorrupt
	ErrTypeMismatch    = layout.ErrTypeMismatch
	ErrUnsupportedType = layout.ErrUnsupportedType
	ErrOwnerDead       = layout.ErrOwnerDead
	ErrNotRecoverable  = layout.ErrNotRecoverable
)

// ErrReadOnly is returned by mutating methods of a Map opened on a
// read-only mapping (segment.ReadOnly), and by reads that could not finish
// lock-free: such a handle cannot take a shard lock, so it cannot wait out
// a stalled writer or repair after a dead one.
var ErrReadOnly = errors.New("shmmap: read-only handle")

// ErrLockTimeout is returned when a shard lock stays held longer than the
// lock timeout (WithLockTimeout, default DefaultLockTimeout) by a process
// that looks alive: a writer stopped (SIGSTOP, a debugger) inside its
// critical section, or a peer that scribbled the lock word with the id of
// a live thread. Errors wrapping it also wrap context.DeadlineExceeded.
var ErrLockTimeout = errors.New("shmmap: shard lock not acquired in time")

// DefaultLockTimeout bounds how long an operation waits for a shard lock
// held by a live process. A healthy writer holds a shard for well under a
// microsecond plus its own scheduling delays.
const DefaultLockTimeout = 10 * time.Second

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

	// readAttempts bounds optimistic (lock-free) read attempts before a
	// reader takes the shard lock. Each attempt may itself wait a while
	// (SeqCount.BeginRead yields while a write is in progress).
	readAttempts = 4
	// readOnlyAttempts is the bound for read-only handles, which have no
	// lock to fall back on.
	readOnlyAttempts = 64
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

// Option configures Create and Open.
type Option func(*config)

type config struct {
	layout      []layout.Option
	lockTimeout time.Duration
	seed        uint64
	seedSet     bool
	shards      int
	shardsSet   bool
}

// WithLayout passes options to the layout layer (segment options, init
// timeout).
func WithLayout(opts ...layout.Option) Option {
	return func(c *config) { c.layout = append(c.layout, opts...) }
}

// WithMode sets the permission bits of a created segment (default 0600).
func WithMode(mode os.FileMode) Option {
	return WithLayout(layout.WithSegment(segment.WithMode(mode)))
}

// WithPopulate pre-faults the mapping (MAP_POPULATE).
func WithPopulate() Option {
	return WithLayout(layout.WithSegment(segment.WithPopulate()))
}

// WithSeed fixes the hash seed at Create (default: random). Open ignores it:
// the seed is read from the segment.
func WithSeed(seed uint64) Option {
	return func(c *config) { c.seed, c.seedSet = seed, true }
}

// WithLockTimeout bounds how long this handle's operations wait for a shard
// lock held by a live process (default DefaultLockTimeout); past it they
// fail with ErrLockTimeout (Get: returns zero, false). A dead holder is
// detected independently of it.
func WithLockTimeout(d time.Duration) Option {
	return func(c *config) { c.lockTimeout = d }
}

// WithShards sets the number of shards at Create: a power of two from 1 to
// 65536. More shards mean less writer contention and smaller repair scans,
// and more slack space. Open ignores it.
func WithShards(n int) Option {
	return func(c *config) { c.shards, c.shardsSet = n, true }
}

// Map is a handle on a shared hash table. See the package documentation for
// the algorithms and the crash semantics.
//
// All methods may be called concurrently from any goroutines and any
// processes, except Close, which must not race with other calls on the same
// handle. Keys and values are copied in and out; nothing returned aliases
// the segment.
type Map[K comparable, V any] struct {
	seg      *layout.Segment
	shardMem []byte       // region 0: shards * stride bytes of shard blocks
	slots    []slot[K, V] // region 1: shards * perShard

	shards uint64
	stride uint64 // bytes per shard block

	h        hasher
	valSpans []span

	shardShift uint   // 64 - shardBits: tag >> shardShift is the shard
	perShard   uint64 // slots per shard
	limit      uint64 // max live keys per shard
	capacity   int
	seed       uint64

	readOnly    bool // mapped read-only: never lock
	lockTimeout time.Duration
	repairs     atomic.Uint64 // repairs done by this handle (Stats)
	lockedReads atomic.Uint64 // reads that fell back to the lock (Stats)
	closed      atomic.Bool
}

// geometry is the shape of a table.
type geometry struct {
	shardBits uint
	perShard  uint64 // slots per shard
	limit     uint64 // max live keys per shard
}

// plan sizes a table for capacity keys in 2^shardBits shards.
func plan(capacity int, shards int, shardsSet bool) (geometry, error) {
	if capacity < 1 || capacity > 1<<40 {
		return geometry{}, fmt.Errorf("shmmap: capacity %d out of range [1, 2^40]", capacity)
	}
	var g geometry
	if shardsSet {
		if shards < 1 || shards > 1<<maxShardBits || shards&(shards-1) != 0 {
			return geometry{}, fmt.Errorf("shmmap: %d shards: want a power of two in [1, %d]", shards, 1<<maxShardBits)
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
		return geometry{}, fmt.Errorf("shmmap: capacity %d needs shards of more than %d slots: use more shards", capacity, maxShardSlots)
	}
	g.perShard = uint64(slots)
	g.limit = g.perShard * loadNum / loadDen
	return g, nil
}

func buildConfig(opts []Option) config {
	c := config{lockTimeout: DefaultLockTimeout}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// typeSpans checks K and V against the type rules and returns the
// non-padding spans of both.
func typeSpans[K comparable, V any]() (kt, vt reflect.Type, ks, vs []span, err error) {
	kt, vt = reflect.TypeFor[K](), reflect.TypeFor[V]()
	for _, t := range []reflect.Type{kt, vt} {
		if _, err := layout.Describe(t); err != nil {
			return nil, nil, nil, nil, fmt.Errorf("shmmap: %w", err)
		}
	}
	if ks, err = byteSpans(kt, false); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("shmmap: key type %s: %w", kt, err)
	}
	if vs, err = byteSpans(vt, true); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("shmmap: value type %s: %w", vt, err)
	}
	return kt, vt, ks, vs, nil
}

// Create makes a new shared map at spec (see package segment for spec
// strings) sized for capacity keys. It fails with fs.ErrExist if the
// segment exists. The caller should segment.Remove(spec) when the map is no
// longer needed; Close only unmaps.
func Create[K comparable, V any](spec string, capacity int, opts ...Option) (*Map[K, V], error) {
	c := buildConfig(opts)
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
		return nil, fmt.Errorf("shmmap: %d slots of %d bytes is too large", total, ss)
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
	s, err := layout.Create(spec, d, nil, c.layout...)
	if err != nil {
		return nil, err
	}
	m, err := attach[K, V](s, ks, vs)
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
	c := buildConfig(opts)
	kt, vt, ks, vs, err := typeSpans[K, V]()
	if err != nil {
		return nil, err
	}
	s, err := layout.Open(spec, layout.Expect{Kind: layout.KindMap, Types: []reflect.Type{kt, vt}}, c.layout...)
	if err != nil {
		return nil, err
	}
	m, err := attach[K, V](s, ks, vs)
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	m.lockTimeout = c.lockTimeout
	return m, nil
}

// attach validates the map geometry in the (already validated, private)
// header copy against the regions and builds the handle.
// checkedGeometry validates the map parameters in a segment's header (not
// the region sizes, which depend on K and V) and returns the geometry.
func checkedGeometry(s *layout.Segment) (geometry, error) {
	h := s.Header()
	p := h.Params
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("shmmap: %s: %w: %s", s.Raw().Spec(), ErrCorrupt, fmt.Sprintf(format, args...))
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

func attach[K comparable, V any](s *layout.Segment, ks, vs []span) (*Map[K, V], error) {
	h := s.Header()
	p := h.Params
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("shmmap: %s: %w: %s", s.Raw().Spec(), ErrCorrupt, fmt.Sprintf(format, args...))
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
		return nil, fmt.Errorf("shmmap: %w", err)
	}
	var k K
	m := &Map[K, V]{
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
	}
	return m, nil
}

// Close unmaps the map. The segment stays until segment.Remove. Close must
// not race with other calls on this handle; other handles and processes are
// unaffected. Calls after Close return ErrClosed (Get: zero, false).
func (m *Map[K, V]) Close() error {
	if m.closed.Swap(true) {
		return ErrClosed
	}
	return m.seg.Close()
}

// Cap returns the capacity the map was created for. Put may succeed past
// it; see the package documentation.
func (m *Map[K, V]) Cap() int { return m.capacity }

// Segment returns the underlying segment (for tools).
func (m *Map[K, V]) Segment() *layout.Segment { return m.seg }

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

// Get returns the value stored for k. It never blocks behind a healthy
// writer for more than a few of its critical sections and never returns a
// torn value; see Load for errors.
func (m *Map[K, V]) Get(k K) (v V, ok bool) {
	// The first optimistic attempt, written out flat: this is the hot
	// path of every reader, and calls and copies cost here.
	if !m.closed.Load() {
		var tag uint64
		if m.h.short {
			tag = m.h.hash8(keyWord(&k)) | 1
		} else {
			tag = hashKey(&m.h, &k) | 1
		}
		sh := tag >> m.shardShift
		ctl := m.ctl(sh)
		seq := &ctl.Seq
		if start := seq.BeginRead(); start&1 == 0 {
			// probe, written out (keep in step with probe): the call
			// costs ~20% of a cache-resident Get.
			base := sh * m.perShard
			i := m.home(tag)
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
			if !seq.Retry(start) && atomic.LoadUint32(&ctl.RedoOp) == opNone {
				return v, ok
			}
		}
	}
	v, ok, _ = m.Load(k)
	return v, ok
}

// Load is Get that also reports errors: ErrClosed, or an error from the
// lock fallback (ErrNotRecoverable, ErrCorrupt from a repair).
func (m *Map[K, V]) Load(k K) (v V, ok bool, err error) {
	if m.closed.Load() {
		return v, false, ErrClosed
	}
	tag, sh := m.tagOf(&k)
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
		if idx, ok = m.probe(sh, tag, &k); ok {
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
	return m.loadLocked(sh, tag, &k)
}

// settle is called by a reader that found shard sh's redo record set while
// the sequence count was even: a writer is between logging and writing, or
// died there with its mutation published but not applied. It takes the
// lock only if that needs no waiting (free, or its holder's death reported
// by the kernel), repairs, and reports whether it did; a live writer's
// shard is left alone. So a dead writer's last mutation becomes visible at
// the next read of its shard, not only at the next write.
func (m *Map[K, V]) settle(sh uint64) bool {
	if m.readOnly {
		return false
	}
	ctl := m.ctl(sh)
	got, err := ctl.Mu.TryLock()
	if !got {
		return false
	}
	if errors.Is(err, shsync.ErrOwnerDead) || ctl.RedoOp != opNone || ctl.Seq.Writing() {
		_ = m.repair(sh)
		if err != nil {
			_ = ctl.Mu.MarkConsistent()
		}
	}
	ctl.Mu.Unlock()
	return true
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

func (m *Map[K, V]) loadLocked(sh, tag uint64, k *K) (V, bool, error) {
	m.lockedReads.Add(1)
	var zero V
	if err := m.lock(sh); err != nil {
		return zero, false, err
	}
	defer m.unlock(sh)
	idx, found, err := m.find(sh, tag, k)
	if err != nil || !found {
		return zero, false, err
	}
	return m.slots[idx].Val, true, nil
}

// find looks k up in shard sh, which the caller has locked. It returns the
// global index of k's slot (found) or of the empty slot ending its probe
// sequence, where k would be inserted. A shard with no empty slot on the
// whole probe (only possible if scribbled) gives ErrCorrupt.
func (m *Map[K, V]) find(sh, tag uint64, k *K) (idx uint64, found bool, err error) {
	base := sh * m.perShard
	i := m.home(tag)
	for range m.perShard {
		s := &m.slots[base+i]
		if s.Meta == 0 {
			return base + i, false, nil
		}
		if s.Meta == tag && s.Key == *k {
			return base + i, true, nil
		}
		i = m.next(i)
	}
	return 0, false, fmt.Errorf("shmmap: shard %d: %w: no empty slot in %d slots", sh, ErrCorrupt, m.perShard)
}

// lock takes shard sh's writer lock, repairing the shard if the previous
// holder died (or left a mutation unfinished). On error the lock is not
// held.
func (m *Map[K, V]) lock(sh uint64) error {
	if m.readOnly {
		return fmt.Errorf("shmmap: shard %d: cannot lock through a read-only mapping (a writer is active, stalled or dead): %w", sh, ErrReadOnly)
	}
	ctl := m.ctl(sh)
	// TryLock is the uncontended fast path (no syscall, no timer); only a
	// contended lock pays for a bounded wait.
	got, err := ctl.Mu.TryLock()
	if !got && err == nil {
		err = m.lockSlow(sh)
	}
	switch {
	case err == nil:
		if ctl.RedoOp == opNone && !ctl.Seq.Writing() {
			return nil
		}
		// A mutation was left unfinished without an owner-death report
		// (a scribbled lock word): repair all the same.
		if rerr := m.repair(sh); rerr != nil {
			ctl.Mu.Unlock()
			return rerr
		}
		return nil
	case errors.Is(err, shsync.ErrOwnerDead):
		rerr := m.repair(sh)
		if cerr := ctl.Mu.MarkConsistent(); cerr != nil && rerr == nil {
			rerr = fmt.Errorf("shmmap: shard %d: mark consistent: %w", sh, cerr)
		}
		if rerr != nil {
			ctl.Mu.Unlock()
			return rerr
		}
		return nil
	case errors.Is(err, ErrCorrupt) || errors.Is(err, ErrLockTimeout):
		return err // from lockSlow, already saying which shard
	default:
		return fmt.Errorf("shmmap: shard %d lock: %w", sh, err)
	}
}

func (m *Map[K, V]) unlock(sh uint64) { m.ctl(sh).Mu.Unlock() }

// lockCheckInterval is how often a blocked lock re-examines the holder. It
// must leave the Mutex room for its own dead-holder poll (DeadOwnerPoll),
// which restarts with every LockContext call.
const lockCheckInterval = 2*shsync.DeadOwnerPoll + 50*time.Millisecond

// lockSlow waits for a contended shard lock, in slices of
// lockCheckInterval. Between slices it checks that the lock word names a
// thread of the process recorded as the holder, and that process is alive:
// a word that names some other live thread (a scribbled segment) would
// otherwise look held forever, since the holder never dies. Two
// inconsistent observations of the same word and record, a slice apart
// (a new holder records itself right after taking the word), give
// ErrCorrupt. A consistent but live holder is waited for up to the lock
// timeout, then ErrLockTimeout.
func (m *Map[K, V]) lockSlow(sh uint64) error {
	ctl := m.ctl(sh)
	deadline := time.Now().Add(m.lockTimeout)
	var suspect shsync.MutexState
	suspected := false
	for {
		wait := min(lockCheckInterval, time.Until(deadline))
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		err := ctl.Mu.LockContext(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		st := ctl.Mu.State()
		if bogusHolder(st) {
			if suspected && st.OwnerTID == suspect.OwnerTID && st.Owner == suspect.Owner {
				return fmt.Errorf("shmmap: shard %d: %w: lock word names thread %d, which is not a live thread of its recorded holder %v",
					sh, ErrCorrupt, st.OwnerTID, st.Owner)
			}
			suspect, suspected = st, true
		} else {
			suspected = false
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("shmmap: shard %d: lock held for over %v by thread %d of %v: %w: %w",
				sh, m.lockTimeout, st.OwnerTID, st.Owner, ErrLockTimeout, err)
		}
	}
}

// bogusHolder reports whether a held lock's word and owner record disagree:
// the recorded process is gone, or the thread in the word is not one of its
// threads. (A dead thread in the word is the Mutex's own business: it
// reports the owner dead.)
func bogusHolder(st shsync.MutexState) bool {
	if !st.Locked || st.OwnerDead || st.NotRecoverable {
		return false
	}
	if st.Owner.PID <= 0 || !proc.Alive(st.Owner) {
		return true
	}
	_, err := os.Stat("/proc/" + strconv.Itoa(int(st.Owner.PID)) + "/task/" + strconv.Itoa(int(st.OwnerTID)))
	return errors.Is(err, fs.ErrNotExist)
}

// repair completes the mutation recorded in shard sh's redo record, then
// recounts the shard and leaves its sequence count even. The caller holds
// the lock. Every step is idempotent, so a repairer killed here is repaired
// by the next locker.
func (m *Map[K, V]) repair(sh uint64) error {
	m.repairs.Add(1)
	ctl := m.ctl(sh)
	op := ctl.RedoOp
	rel := uint64(ctl.RedoSlot)
	base := sh * m.perShard
	var err error
	ctl.Seq.BeginWrite() // keeps an odd count (a writer died mid-write) odd
	switch op {
	case opNone:
	case opInsert, opUpdate, opDelete:
		if rel >= m.perShard {
			err = fmt.Errorf("shmmap: shard %d: %w: redo record names slot %d of %d", sh, ErrCorrupt, rel, m.perShard)
			break
		}
		r := m.redoEntry(sh)
		switch op {
		case opInsert:
			if r.Meta&1 == 0 || r.Meta>>m.shardShift != sh {
				err = fmt.Errorf("shmmap: shard %d: %w: redo entry tag %#x is not of this shard", sh, ErrCorrupt, r.Meta)
				break
			}
			m.slots[base+rel] = *r
		case opUpdate:
			if m.slots[base+rel].Meta == 0 {
				err = fmt.Errorf("shmmap: shard %d: %w: redo update of empty slot %d", sh, ErrCorrupt, rel)
				break
			}
			m.slots[base+rel].Val = r.Val
		case opDelete:
			m.shiftFrom(sh, rel)
		}
	case opClear:
		m.clearShard(sh)
	default:
		err = fmt.Errorf("shmmap: shard %d: %w: unknown redo op %#x", sh, ErrCorrupt, op)
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

// Put stores v for k. It returns ErrFull if k is new and its shard is at
// its limit. If the calling process is killed during Put, the store either
// happened completely or not at all (the next writer of the shard finishes
// it if its redo record was published).
func (m *Map[K, V]) Put(k K, v V) error {
	if m.closed.Load() {
		return ErrClosed
	}
	tag, sh := m.tagOf(&k)
	m.touch(sh, tag)
	if err := m.lock(sh); err != nil {
		return err
	}
	err := m.putLocked(sh, tag, &k, &v)
	m.unlock(sh)
	return err
}

// touch loads the key's home slot before the lock is taken, so that its
// cache and TLB misses overlap with the lock's instead of following them
// (every locked instruction of the lock and the seqlock waits for earlier
// loads, so a miss inside the critical section is paid in full). The atomic
// load keeps the compiler from dropping it; on amd64 it is a plain MOV.
// Touching the shard block's other lines as well measured no better.
func (m *Map[K, V]) touch(sh, tag uint64) {
	atomic.LoadUint64(&m.slots[sh*m.perShard+m.home(tag)].Meta)
}

func (m *Map[K, V]) putLocked(sh, tag uint64, k *K, v *V) error {
	idx, found, err := m.find(sh, tag, k)
	if err != nil {
		return err
	}
	if found {
		m.writeUpdate(sh, idx, v)
		return nil
	}
	return m.writeInsert(sh, idx, tag, k, v)
}

// writeInsert stores a new entry in the empty slot idx of locked shard sh.
func (m *Map[K, V]) writeInsert(sh, idx, tag uint64, k *K, v *V) error {
	ctl := m.ctl(sh)
	n := ctl.Count.Load()
	if n >= m.limit {
		return fmt.Errorf("shmmap: put: shard %d holds %d keys, its limit: %w", sh, n, ErrFull)
	}
	r := m.redoEntry(sh)
	r.Meta, r.Key, r.Val = tag, *k, *v
	ctl.RedoSlot = uint32(idx - sh*m.perShard)
	ctl.RedoOp = opInsert
	if crashpoint.Enabled {
		crashpoint.Hit("shmmap.put-logged")
	}
	ctl.Seq.BeginWrite()
	s := &m.slots[idx]
	s.Key, s.Val = *k, *v
	if crashpoint.Enabled {
		crashpoint.Hit("shmmap.put-mid")
	}
	s.Meta = tag
	ctl.Count.Store(n + 1)
	ctl.Seq.EndWrite()
	if crashpoint.Enabled {
		crashpoint.Hit("shmmap.put-applied")
	}
	ctl.RedoOp = opNone
	return nil
}

// writeUpdate replaces the value in live slot idx of locked shard sh.
func (m *Map[K, V]) writeUpdate(sh, idx uint64, v *V) {
	ctl := m.ctl(sh)
	m.redoEntry(sh).Val = *v
	ctl.RedoSlot = uint32(idx - sh*m.perShard)
	ctl.RedoOp = opUpdate
	if crashpoint.Enabled {
		crashpoint.Hit("shmmap.update-logged")
	}
	ctl.Seq.BeginWrite()
	m.slots[idx].Val = *v
	if crashpoint.Enabled {
		crashpoint.Hit("shmmap.update-mid")
	}
	ctl.Seq.EndWrite()
	ctl.RedoOp = opNone
}

// writeDelete removes live slot idx of locked shard sh.
func (m *Map[K, V]) writeDelete(sh, idx uint64) {
	ctl := m.ctl(sh)
	rel := idx - sh*m.perShard
	ctl.RedoSlot = uint32(rel)
	ctl.RedoOp = opDelete
	if crashpoint.Enabled {
		crashpoint.Hit("shmmap.delete-logged")
	}
	ctl.Seq.BeginWrite()
	m.shiftFrom(sh, rel)
	if n := ctl.Count.Load(); n > 0 {
		ctl.Count.Store(n - 1)
	}
	ctl.Seq.EndWrite()
	ctl.RedoOp = opNone
}

// shiftFrom deletes by backward shift starting at hole (relative to shard
// sh): entries later in the cluster whose home is at or before the hole
// move back into it, until an empty slot ends the cluster. The current hole
// is recorded in RedoSlot after each move, so a replay restarts exactly
// where a killed writer stopped (the slot it was filling is refilled from
// the same, still intact, source). The caller holds the lock with the
// sequence count odd.
func (m *Map[K, V]) shiftFrom(sh, hole uint64) {
	ctl := m.ctl(sh)
	base := sh * m.perShard
	i := hole % m.perShard
	j := i
	for range m.perShard - 1 {
		j = m.next(j)
		meta := m.slots[base+j].Meta
		if meta == 0 {
			break
		}
		// The entry at j may move to i iff i lies on its probe path,
		// i.e. within [home, j) cyclically.
		if m.dist(i, j) <= m.dist(m.home(meta), j) {
			m.slots[base+i] = m.slots[base+j]
			if crashpoint.Enabled {
				crashpoint.Hit("shmmap.delete-shifting")
			}
			ctl.RedoSlot = uint32(j)
			i = j
		}
	}
	m.slots[base+i].Meta = 0
}

// Delete removes k and reports whether it was present. Errors (ErrClosed,
// lock failures) report false; LoadAndDelete returns them. A Delete killed
// midway is completed by the next writer of the shard if it had begun.
func (m *Map[K, V]) Delete(k K) bool {
	_, ok, _ := m.LoadAndDelete(k)
	return ok
}

// LoadAndDelete removes k and returns the value it had.
func (m *Map[K, V]) LoadAndDelete(k K) (v V, loaded bool, err error) {
	if m.closed.Load() {
		return v, false, ErrClosed
	}
	tag, sh := m.tagOf(&k)
	m.touch(sh, tag)
	if err := m.lock(sh); err != nil {
		return v, false, err
	}
	defer m.unlock(sh)
	idx, found, err := m.find(sh, tag, &k)
	if err != nil || !found {
		return v, false, err
	}
	v = m.slots[idx].Val
	m.writeDelete(sh, idx)
	return v, true, nil
}

// Update reads k's current value (ok false if absent) and, under the
// shard's lock, applies fn's decision: keep true stores the returned value
// (ErrFull if k is new and the shard is full), keep false deletes k. fn runs
// while the shard lock is held, so it must be quick and must not call
// methods of this map (it would deadlock on its own shard). If fn panics,
// nothing is changed and the lock is released.
func (m *Map[K, V]) Update(k K, fn func(v V, ok bool) (nv V, keep bool)) error {
	if m.closed.Load() {
		return ErrClosed
	}
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
	err = m.Update(k, func(cur V, ok bool) (V, bool) {
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
	err = m.Update(k, func(cur V, ok bool) (V, bool) {
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
	err = m.Update(k, func(cur V, ok bool) (V, bool) {
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
// on is finished by its next writer.
func (m *Map[K, V]) Clear() error {
	if m.closed.Load() {
		return ErrClosed
	}
	for sh := range m.shards {
		if err := m.lock(sh); err != nil {
			return err
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

// Len returns the number of keys, summed over shards without locking: under
// concurrent writes it is a moment-by-moment approximation.
func (m *Map[K, V]) Len() int {
	if m.closed.Load() {
		return 0
	}
	var n uint64
	for sh := range m.shards {
		n += min(m.ctl(sh).Count.Load(), m.limit)
	}
	return int(n)
}

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
// cannot be read (lock not recoverable, closed map) are skipped.
func (m *Map[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		var buf []entry[K, V]
		for sh := range m.shards {
			if m.closed.Load() {
				return
			}
			var err error
			buf, err = m.snapshot(sh, buf[:0])
			if err != nil {
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

// snapshot appends the live entries of shard sh to buf.
func (m *Map[K, V]) snapshot(sh uint64, buf []entry[K, V]) ([]entry[K, V], error) {
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
