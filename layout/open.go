package layout

import (
	"errors"
	"fmt"
	"time"

	"github.com/shmkit/shmkit/internal/proc"
	"github.com/shmkit/shmkit/segment"
)

// Open attaches the segment named by spec and checks that it holds what want
// describes. It waits (up to the init timeout) for a creator that is still
// initializing, and fails at once if that creator has died. An object that
// is not a shmkit segment (another program's data, a text file, an empty or
// all-zero file) fails at once with ErrBadMagic, naming its first bytes;
// only an empty or all-zero object made less than CreatorGrace ago is
// waited for, as one whose creator is about to write its header.
func Open(spec string, want Expect, opts ...Option) (*Segment, error) {
	o := buildOptions(opts)
	deadline := time.Now().Add(o.InitTimeout)
	backoff := 50 * time.Microsecond
	for {
		s, err := tryOpen(spec, o)
		if err == nil {
			if err := s.check(want); err != nil {
				_ = s.Close()
				return nil, err
			}
			return s, nil
		}
		var retry *notYet
		if !errors.As(err, &retry) {
			return nil, err
		}
		if time.Now().After(deadline) {
			if retry.also != nil {
				return nil, WrapOp("layout", "open", spec, fmt.Errorf("%w (%w): %s after %v", ErrNotReady, retry.also, retry.why, o.InitTimeout))
			}
			return nil, WrapOp("layout", "open", spec, fmt.Errorf("%w: %s after %v", ErrNotReady, retry.why, o.InitTimeout))
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 20*time.Millisecond)
	}
}

// notYet marks an open that may succeed once the creator finishes.
type notYet struct {
	why  string
	also error // a second sentinel the final error wraps, if any
}

func (e *notYet) Error() string { return e.why }

func tryOpen(spec string, o Options) (*Segment, error) {
	raw, err := segment.Open(spec, o.Segment...)
	var empty *segment.EmptyError
	if errors.As(err, &empty) {
		// A creator sizes the object right after creating it: worth a
		// wait only while the object is that new.
		if justMade(empty.Origin) {
			return nil, &notYet{why: "object still has zero size", also: ErrTooSmall}
		}
		return nil, WrapOp("layout", "open", canonical(spec), fmt.Errorf("%w: the object is empty (0 bytes) and was last changed %s ago, so no creator is sizing it",
			ErrBadMagic, time.Since(empty.Origin.Changed).Round(time.Millisecond)))
	}
	if err != nil {
		return nil, err
	}
	s, err := attach(raw)
	if err != nil {
		_ = raw.Close()
		return nil, err
	}
	return s, nil
}

// canonical is spec as the segment layer names it.
func canonical(spec string) string {
	if sp, err := segment.ParseSpec(spec); err == nil {
		return sp.String()
	}
	return spec
}

// CreatorGrace is how long after an object was made (or last sized: see
// segment.Origin) Open still takes it for one whose creator is about to
// write a header, when the object is empty or all zero. A creator writes
// its pid and the Initializing state within microseconds of sizing the
// object; after that, Open waits (up to the init timeout) only for a live
// creator named in the header. An older empty or all-zero object is not a
// shmkit segment, and Open says so at once.
const CreatorGrace = time.Second

// justMade reports whether an object with origin o may still be in the
// hands of a creator that has not written anything yet.
func justMade(o segment.Origin) bool {
	age := time.Since(o.Changed)
	if o.CreatorPID > 0 {
		// SysV records the creator, and its ctime in whole seconds.
		return age < CreatorGrace+time.Second && proc.Alive(proc.ID{PID: o.CreatorPID})
	}
	return age < CreatorGrace
}

// attach validates the header of an open raw segment.
func attach(raw *segment.Segment) (*Segment, error) {
	b := raw.Bytes()
	name := raw.Spec().String()
	st := StateReady // a b shorter than a header is reported by peek
	if len(b) >= HeaderSize {
		st = stateWord(b).Load()
	}
	if st == StateZero || st == StateInitializing {
		return nil, notReady(raw, b, st)
	}
	// The state word was loaded first (acquire): a Ready header is whole.
	// peek validates private copies, since a peer may keep writing.
	h, types, err := peek(b, len(b), st)
	if err != nil {
		return nil, WrapOp("layout", "open", name, err)
	}
	return &Segment{raw: raw, hdr: *h, types: types, regions: regionSlices(b, h)}, nil
}

// notReady explains a shared header whose state word st said Zero or
// Initializing: a creator still at work (a *notYet, worth waiting for),
// one that died, or bytes that were never a shmkit header. Unlike Peek it
// reads live shared memory, where the state word was loaded before the
// rest, so a magic already in place may only mean the creator finished
// since: the state word is loaded again before that is held against it.
//
// The init protocol (publish): the creator writes its pid and start time,
// stores Initializing, fills the regions, writes the header and the magic,
// and stores Ready. So Open waits for an Initializing state word naming a
// live creator, and for a creator that has written its identity but not
// yet the state word; it waits for an all-zero object only while that
// object is new enough for a creator to be about to write (justMade).
// Anything else is not a shmkit segment, said at once.
func notReady(raw *segment.Segment, b []byte, st uint32) error {
	name := raw.Spec().String()
	c := creatorRecord(b)
	switch {
	case st == StateInitializing && c.PID > 0:
		if creatorDied(b, c) {
			return WrapOp("layout", "open", name, fmt.Errorf("%w: creator pid %d died before finishing initialization (remove the segment and create it again)", ErrNotReady, c.PID))
		}
		return &notYet{why: fmt.Sprintf("creator pid %d still initializing", c.PID)}
	case st == StateInitializing:
		// The creator writes its pid before it stores Initializing.
		return WrapOp("layout", "open", name, fmt.Errorf("%w: init state word set but no creator pid written (first bytes are %s)", ErrCorrupt, firstBytes(b)))
	}
	// StateZero when loaded; the creator may have moved on since. It stores
	// Initializing before it writes any header byte, so if the bytes read
	// below include any of its writes, a second load of the state word (after
	// them) is no longer Zero: then this is a creator at work, not a foreign
	// object (a half-copied magic would otherwise read as one).
	var magic [8]byte
	copy(magic[:], b)
	c = creatorRecord(b)
	if stateWord(b).Load() != StateZero {
		return &notYet{why: "creator at work"} // retry reads it whole
	}
	switch {
	case magic == Magic:
		if stateWord(b).Load() != StateZero {
			return &notYet{why: "creator finishing"} // retry reads it whole
		}
		return WrapOp("layout", "open", name, notShmkit(b, len(b)))
	case magic == [8]byte{} && c.PID > 0 && c.Start != 0 && allZero(b[:offCreator]):
		// The creator's identity, not yet the state word.
		if creatorDied(b, c) {
			return WrapOp("layout", "open", name, fmt.Errorf("%w: creator pid %d died before finishing initialization (remove the segment and create it again)", ErrNotReady, c.PID))
		}
		return &notYet{why: fmt.Sprintf("creator pid %d starting", c.PID)}
	case magic == [8]byte{} && c.PID == 0 && c.Start != 0 && allZero(b[:offCreator]):
		// The creator's start time, not yet its pid (it writes them in
		// that order): nothing to check for life yet, so wait as for an
		// all-zero object, while the object is new.
		if o, err := raw.Origin(); err == nil && justMade(o) {
			return &notYet{why: "creator starting"}
		}
	case allZero(b[:min(len(b), headRead)]):
		if o, err := raw.Origin(); err == nil && justMade(o) {
			return &notYet{why: "no header written yet (all zero)"}
		}
	}
	// The scan above read later than the words before it: bytes a creator
	// wrote in between (its identity first, then the state word, then the
	// rest) must not make an empty-looking header a foreign object. If any
	// of those words moved since they were read, look again.
	if creatorRecord(b) != c || stateWord(b).Load() != StateZero || [8]byte(b[:8]) != magic {
		return &notYet{why: "creator at work"} // retry reads it whole
	}
	return WrapOp("layout", "open", name, notShmkit(b, len(b)))
}

// creatorDied reports whether creator c of the header in b died before
// finishing it. The state word is loaded again after the liveness check: a
// creator that finished (stored Ready) and exited since our first load is
// not one that died during initialization.
func creatorDied(b []byte, c ProcRecord) bool {
	if proc.Alive(proc.ID{PID: c.PID, Start: c.Start}) {
		return false
	}
	st := stateWord(b).Load()
	return st == StateZero || st == StateInitializing
}

// check verifies kind and element types against what the caller expects.
func (s *Segment) check(want Expect) error {
	name := s.raw.Spec().String()
	if want.Kind != KindAny && s.hdr.Kind != want.Kind {
		return WrapOp("layout", "open", name, fmt.Errorf("%w: segment holds a %s, opened as a %s", ErrTypeMismatch, s.hdr.Kind, want.Kind))
	}
	if want.Types == nil {
		return nil
	}
	if len(want.Types) != len(s.types) {
		return WrapOp("layout", "open", name, fmt.Errorf("%w: segment has %d element types, opened with %d", ErrTypeMismatch, len(s.types), len(want.Types)))
	}
	for i, t := range want.Types {
		ti, err := Describe(t)
		if err != nil {
			return err
		}
		if ti.Fingerprint != s.types[i].Fingerprint || ti.Layout != s.types[i].Layout {
			if d := layoutDiff(s.types[i].Layout, ti.Layout); d != "" {
				return WrapOp("layout", "open", name, fmt.Errorf("%w: segment holds %s, opened as %s (%s)", ErrTypeMismatch, s.types[i], ti, d))
			}
			return WrapOp("layout", "open", name, fmt.Errorf("%w: segment holds %s, opened as %s", ErrTypeMismatch, s.types[i], ti))
		}
	}
	return nil
}
