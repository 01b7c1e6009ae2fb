package shmbus

import (
	"fmt"

	"github.com/shmkit/shmkit/internal/faultguard"
	"github.com/shmkit/shmkit/internal/options"
)

// Overflow is what Publish does when the slowest subscriber is a whole
// capacity behind. It is fixed at Create.
type Overflow uint8

const (
	// Block (the default): Publish waits until the slowest live subscriber
	// has read the oldest message.
	Block Overflow = 1
	// Overwrite: Publish never waits; a lapped subscriber gets ErrLagged.
	Overwrite Overflow = 2
)

func (o Overflow) String() string {
	switch o {
	case Block:
		return "block"
	case Overwrite:
		return "overwrite"
	}
	return fmt.Sprintf("overflow(%d)", uint8(o))
}

// settings are the bus's own options.
type settings struct {
	overflow    Overflow
	overflowSet bool
	maxSubs     int
	maxSubsSet  bool
	faultGuard  bool
}

// WithFaultGuard runs every call of the handle and its subscribers under the
// fault guard, the per-item fast paths (Publish, TryPublish, Next, TryNext,
// Peek, Release) included: a segment truncated by another process then gives
// an error wrapping ErrCorrupt and ErrTruncated from whichever call touches
// a lost page, never SIGBUS. It costs a few ns per call (see
// BenchmarkFaultGuard); without it those calls guard only their slow paths
// (claiming the publisher role, rescanning the subscribers, waiting). On a
// segment that cannot fault (segment's CannotFault: a sealed memfd, as
// Create makes, where the kernel cannot refuse memory; see "Truncated
// segments") it changes nothing: no call there is guarded, or needs to be.
func WithFaultGuard() Option {
	return options.New("shmbus", "WithFaultGuard", func(c *options.Config) { c.Own.(*settings).faultGuard = true })
}

// ErrTruncated is wrapped by the error a bus call returns when the segment
// was truncated under it (a peer with write access called ftruncate on a
// posix: or file: segment, and the pages the call touched are gone):
// "segment truncated by another process". It wraps ErrCorrupt; the Bus
// handle and its subscribers are then good only for Close, and every other
// call returns that same first error. It is the same value as
// shmring.ErrTruncated.
var ErrTruncated = faultguard.ErrTruncated

// DefaultMaxSubscribers is the subscriber table size unless
// WithMaxSubscribers says otherwise.
const DefaultMaxSubscribers = 16

// MaxSubscribers bounds WithMaxSubscribers.
const MaxSubscribers = 4096

// WithOverflow sets the overflow policy of a new bus: Block (default) or
// Overwrite. Given to Open, it must match the bus's policy.
func WithOverflow(p Overflow) Option {
	return options.New("shmbus", "WithOverflow", func(c *options.Config) {
		s := c.Own.(*settings)
		s.overflow, s.overflowSet = p, true
	})
}

// WithMaxSubscribers sets how many subscribers (live, dead-but-recorded and
// durable) a new bus can hold, default DefaultMaxSubscribers, at most
// MaxSubscribers. Given to Open, it must match.
func WithMaxSubscribers(n int) Option {
	return options.New("shmbus", "WithMaxSubscribers", func(c *options.Config) {
		s := c.Own.(*settings)
		s.maxSubs, s.maxSubsSet = n, true
	})
}

func buildConfig(op, spec string, opts []Option) (options.Config, *settings, error) {
	st := &settings{overflow: Block, maxSubs: DefaultMaxSubscribers}
	cfg, err := options.Build("shmbus", st, opts)
	if err != nil {
		return cfg, nil, options.BuildError("shmbus", op, spec, err)
	}
	return cfg, st, nil
}
