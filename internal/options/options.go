// Package options is the one option vocabulary of shmkit's structures.
//
// Every structure package (shmring, shmqueue, shmmap, shmbus) declares
//
//	type Option = options.Option
//
// and re-exports the common constructors (WithMode, WithPopulate,
// WithWaitPolicy, WithSegment, WithLayout, WithInitTimeout) the same way it
// re-exports the sentinel errors, so an option means the same thing
// everywhere and is written once. Options that only make sense for one
// structure (a queue's backend, a map's seed, a bus's overflow policy) are
// made with New by that structure's package and carry its name: passing one
// to another structure is an error naming both, not silently ignored.
package options

import (
	"fmt"
	"os"
	"time"

	"github.com/shmkit/shmkit/internal/shmerr"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	shmsync "github.com/shmkit/shmkit/sync"
)

// Option configures Create and Open of any structure.
type Option struct {
	pkg   string // "" for options every structure takes
	name  string
	apply func(*Config)
}

// String names the option, e.g. "shmqueue.WithBackend".
func (o Option) String() string {
	if o.pkg == "" {
		return o.name
	}
	return o.pkg + "." + o.name
}

// Config is what a structure's Create or Open is asked for. The common part
// is read by every structure; Own is the structure's own settings, written
// only by options made with New for that structure.
type Config struct {
	// Layout holds the segment and layout options, in the order given.
	Layout []layout.Option
	// Policy is how blocking calls wait; PolicySet reports whether an
	// option set it (else the structure's default applies).
	Policy    shmsync.WaitPolicy
	PolicySet bool
	// Mode is the permission bits WithMode asked for (0: none asked, the
	// default 0600), for what a structure creates besides its segment (a
	// queue's SysV semaphore set).
	Mode os.FileMode
	// Own is the structure's private settings (see New).
	Own any
}

// New makes an option that only structure pkg takes. apply receives the
// Config; it finds its structure's settings in Config.Own (set up by Build's
// caller).
func New(pkg, name string, apply func(*Config)) Option {
	return Option{pkg: pkg, name: name, apply: apply}
}

// Build applies opts for structure pkg, with own as Config.Own (a pointer to
// the structure's settings, defaults filled in). It refuses an option made
// for another structure, and a wait policy with negative durations.
func Build(pkg string, own any, opts []Option) (Config, error) {
	c := Config{Own: own}
	for _, o := range opts {
		if o.apply == nil {
			continue // the zero Option: nothing asked
		}
		if o.pkg != "" && o.pkg != pkg {
			return c, fmt.Errorf("option %s is for %s, not %s", o, o.pkg, pkg)
		}
		o.apply(&c)
	}
	if err := c.Policy.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

// BuildError wraps a Build error as the structure's OpError.
func BuildError(pkg, op, spec string, err error) error {
	return shmerr.WrapOp(pkg, op, spec, fmt.Errorf("%w: %w", shmerr.ErrBadOption, err))
}

// WithMode sets the permission bits of a created segment (default 0600;
// the umask does not apply).
func WithMode(m os.FileMode) Option {
	seg := WithSegment(segment.WithMode(m))
	return Option{name: "WithMode", apply: func(c *Config) {
		seg.apply(c)
		c.Mode = m & os.ModePerm
	}}
}

// WithPopulate pre-faults the mapping at Create and Open, so first touches
// do not fault on the hot path.
func WithPopulate() Option {
	return WithSegment(segment.WithPopulate())
}

// WithSegment passes options to the segment layer (segment.Create/Open):
// modes, trust of another owner, and the like.
func WithSegment(opts ...segment.Option) Option {
	return WithLayout(layout.WithSegment(opts...))
}

// WithLayout passes options to layout.Create / layout.Open.
func WithLayout(opts ...layout.Option) Option {
	return Option{name: "WithLayout", apply: func(c *Config) { c.Layout = append(c.Layout, opts...) }}
}

// WithInitTimeout bounds how long Open waits for a live creator to finish
// initializing the segment.
func WithInitTimeout(d time.Duration) Option {
	return WithLayout(layout.WithInitTimeout(d))
}

// WithWaitPolicy sets how this handle's blocking calls wait (see
// sync.WaitPolicy; each structure has its own default). It is per handle,
// not per segment: each side chooses its own.
func WithWaitPolicy(p shmsync.WaitPolicy) Option {
	return Option{name: "WithWaitPolicy", apply: func(c *Config) { c.Policy, c.PolicySet = p, true }}
}

// PolicyOr returns the policy an option set, or def.
func (c *Config) PolicyOr(def shmsync.WaitPolicy) shmsync.WaitPolicy {
	if c.PolicySet {
		return c.Policy
	}
	return def
}
