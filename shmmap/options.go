package shmmap

import (
	"fmt"
	"time"

	"github.com/shmkit/shmkit/internal/options"
)

// Option configures Create and Open. Every shmkit structure takes the same
// option vocabulary (see api.go for the common constructors); WithSeed,
// WithShards and WithLockTimeout are the map's own, and passing them to
// another structure is an error naming both.
type Option = options.Option

// mapSettings are the map's own settings, written by its own options.
type mapSettings struct {
	lockTimeout time.Duration
	seed        uint64
	seedSet     bool
	shards      int
	shardsSet   bool
	faultGuard  bool
}

// own returns the map's settings in c (set up by buildConfig).
func own(c *options.Config) *mapSettings { return c.Own.(*mapSettings) }

// WithSeed fixes the hash seed at Create (default: random). Open ignores it:
// the seed is read from the segment.
func WithSeed(seed uint64) Option {
	return options.New("shmmap", "WithSeed", func(c *options.Config) {
		s := own(c)
		s.seed, s.seedSet = seed, true
	})
}

// WithLockTimeout bounds how long this handle's operations wait for a shard
// lock held by a live process (default DefaultLockTimeout); past it they
// fail with ErrLockTimeout (Get: returns zero, false). A dead holder is
// detected independently of it. It is per handle, not per segment.
func WithLockTimeout(d time.Duration) Option {
	return options.New("shmmap", "WithLockTimeout", func(c *options.Config) { own(c).lockTimeout = d })
}

// WithShards sets the number of shards at Create: a power of two from 1 to
// 65536. More shards mean less writer contention and smaller repair scans,
// and more slack space. Open ignores it.
func WithShards(n int) Option {
	return options.New("shmmap", "WithShards", func(c *options.Config) {
		s := own(c)
		s.shards, s.shardsSet = n, true
	})
}

// WithFaultGuard runs every call of the handle under the fault guard, the
// per-key ones (Get, Load, Put, Delete, LoadAndDelete, Update,
// CompareAndSwap, CompareAndDelete, LoadOrStore) included: a posix: or file:
// segment truncated by another process then gives an error wrapping
// ErrCorrupt and ErrTruncated from whichever call touches a lost page (Get:
// zero, false), never SIGBUS. It costs a few ns per call (see
// BenchmarkFaultGuard); without it only the slow paths are guarded (lock
// waits, locked reads, repairs, All, Clear, Len, Stats, Check, Inspect). On
// a segment that cannot fault (segment's CannotFault: a sealed memfd, as
// Create makes, where the kernel cannot refuse memory; see "Truncated
// segments") it changes nothing: no call there is guarded, or needs to be.
func WithFaultGuard() Option {
	return options.New("shmmap", "WithFaultGuard", func(c *options.Config) { own(c).faultGuard = true })
}

// buildConfig applies the options of Create and Open. A wait policy
// (WithWaitPolicy) is accepted and validated like every structure's, but a
// map has no blocking operation of its own: it waits only for shard locks,
// and how long is WithLockTimeout's business (the robust Mutex parks at
// once and polls for a dead holder on its own schedule).
func buildConfig(op, spec string, opts []Option) (options.Config, mapSettings, error) {
	s := mapSettings{lockTimeout: DefaultLockTimeout}
	cfg, err := options.Build("shmmap", &s, opts)
	if err == nil && s.lockTimeout < 0 {
		err = fmt.Errorf("WithLockTimeout(%v): negative", s.lockTimeout)
	}
	if err != nil {
		return cfg, s, options.BuildError("shmmap", op, spec, err)
	}
	return cfg, s, nil
}
