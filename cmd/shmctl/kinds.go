package main

import "github.com/shmkit/shmkit/layout"

// probe is what shmctl knows about one kind of structure beyond the common
// header. Each structure package's support lives in its own file
// (kind_ring.go, ...) and registers itself here in init.
type probe struct {
	// live reads the structure's live state from a validated, read-only
	// segment. It must validate what it reads (a peer may scribble the
	// control block at any time) and return an error wrapping
	// layout.ErrCorrupt instead of panicking. It reports stale state (dead
	// role holders, dead lock owners) in Live.Problems.
	live func(s *layout.Segment) (*Live, error)
	// liveSpec is live for packages whose inspection entry point opens the
	// segment itself; it gets a spec reaching the same object and must open
	// it read-only. Used when live is nil.
	liveSpec func(spec string) (*Live, error)
	// repair opens spec writable and recovers from dead owners exactly as
	// the package itself would (through the package's own function). It
	// returns one line per action taken.
	repair func(spec string) ([]string, error)
	// remove deletes the segment and whatever else the structure owns
	// outside it (a SysV semaphore set). nil: segment.Remove.
	remove func(spec string) error
}

var probes = map[layout.Kind]probe{}

// hasLive reports whether the probe can read live state.
func (p probe) hasLive() bool { return p.live != nil || p.liveSpec != nil }

// readLive reads live state from s, which was opened read-only through
// spec. It returns nil, nil when the structure has nothing live to show.
func (p probe) readLive(s *layout.Segment, spec string) (*Live, error) {
	if p.live != nil {
		return p.live(s)
	}
	if p.liveSpec != nil {
		return p.liveSpec(spec)
	}
	return nil, nil
}
