package shmmap

import (
	"os"
	"time"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
)

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

func buildConfig(opts []Option) config {
	c := config{lockTimeout: DefaultLockTimeout}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}
