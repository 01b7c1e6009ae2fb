package shmring

import (
	"github.com/shmkit/shmkit/internal/options"
	shmsync "github.com/shmkit/shmkit/sync"
)

// defaultPolicy is how a ring handle waits unless WithWaitPolicy says
// otherwise.
var defaultPolicy = shmsync.SpinThenPark

// settings are shmring's own options (options.Config.Own).
type settings struct {
	faultGuard bool
}

// WithFaultGuard runs every call of the handle under the fault guard, the
// per-item fast paths (Push, Pop, TryPush, TryPop, Claim, Publish, Peek,
// Advance, and the ByteRing's Reserve, Commit, Write, TryWrite, Read,
// ReadWait, Release, ReadInto, ...) included: a segment truncated by another
// process then gives an error wrapping ErrCorrupt from whichever call
// touches a lost page, never SIGBUS. It costs about 10 ns per call (see
// BenchmarkFaultGuard); without it those calls guard only their slow paths.
// On a segment that cannot fault (segment's CannotFault: a sealed memfd, as
// Create makes, where the kernel cannot refuse memory; see "Truncated
// segments") it changes nothing: no call there is guarded, or needs to be.
func WithFaultGuard() Option {
	return options.New("shmring", "WithFaultGuard", func(c *options.Config) {
		c.Own.(*settings).faultGuard = true
	})
}

// buildConfig applies the options of Create and Open.
func buildConfig(op, spec string, opts []Option) (options.Config, error) {
	cfg, err := options.Build("shmring", &settings{}, opts)
	if err != nil {
		return cfg, options.BuildError("shmring", op, spec, err)
	}
	return cfg, nil
}
