package layout

import (
	"encoding/binary"
	"fmt"
)

// Peek decodes the header at the start of b without attaching anything,
// for tools that look at segments without opening them (cmd/shmctl). b is a
// private copy of the object's first bytes, read front to back (pread, or a
// copy of a mapping), holding at least the header and the type
// descriptions; size is the size of the whole object. Nothing in b is
// trusted: Peek never panics and validates exactly as Open does.
//
// The results say what b holds:
//
//   - nil header, error wrapping ErrBadMagic: not a shmkit segment, nor one
//     whose creator has begun (an all-zero object is not one either).
//   - nil header, error wrapping ErrTooSmall: b is shorter than a header (it
//     also wraps ErrBadMagic when b does not begin with the magic).
//   - header, error wrapping ErrNotReady: a creator started the segment and
//     has not finished (State is StateZero or StateInitializing). Only
//     Creator and State are certain to be written; ask package proc whether
//     the creator still lives.
//   - header, error wrapping ErrCorrupt, ErrVersion or ErrTooSmall: a shmkit
//     header that fails validation (or an impossible init history). The
//     header and the types, as far as they decode, are what the segment
//     claims, for display only.
//   - header, types, nil: a ready header that validates, and its element
//     types, checked against their fingerprints.
func Peek(b []byte, size int) (*Header, []TypeInfo, error) {
	st := StateReady
	if len(b) >= HeaderSize {
		st = binary.NativeEndian.Uint32(b[offState:])
	}
	return peek(b, size, st)
}

// peek is Peek with the state word given: attach loads it atomically from
// shared memory before copying the rest. b may be shared memory; peek reads
// it only through private copies.
func peek(b []byte, size int, st uint32) (*Header, []TypeInfo, error) {
	if len(b) < HeaderSize {
		if len(b) < len(Magic) || [8]byte(b[:8]) != Magic {
			// Not a shmkit segment, and also too short to be one.
			// Not a shmkit segment (what it says), and also too short to be
			// one (errors.Is only).
			return nil, nil, alsoIs{notShmkit(b, size), ErrTooSmall}
		}
		return nil, nil, fmt.Errorf("%w: %d bytes, header needs %d", ErrTooSmall, len(b), HeaderSize)
	}
	h := new(Header)
	copy(headerBytes(h), b[:HeaderSize])
	h.State = st
	starting := st == StateZero || st == StateInitializing
	switch {
	case h.Magic == Magic:
	case h.Magic == [8]byte{} && starting && h.Creator.PID > 0 &&
		(st == StateInitializing || h.Creator.Start != 0 && allZero(b[:offCreator])):
		// A creator began (and may have died) before writing the header:
		// only its identity and the state word are there yet.
	default:
		return nil, nil, notShmkit(b, size)
	}
	var desc []byte
	if h.TypeDescOff <= uint64(len(b)) && h.TypeDescLen <= min(uint64(len(b))-h.TypeDescOff, maxTypeDesc*MaxTypes) {
		desc = append([]byte(nil), b[h.TypeDescOff:h.TypeDescOff+h.TypeDescLen]...)
	}
	types, typesErr := decodeTypeDescs(desc, h)
	switch {
	case h.Magic == Magic && st == StateZero && allZero(b[len(Magic):min(len(b), headRead)]):
		return nil, nil, notShmkit(b, size)
	case h.Magic == Magic && st == StateZero:
		// The creator stores Initializing before anything else and the
		// magic last, just before Ready: this history is impossible.
		return h, types, fmt.Errorf("%w: header written but init state word is zero", ErrCorrupt)
	case starting && h.Creator.PID <= 0:
		return h, types, fmt.Errorf("%w: initializing segment names no creator (pid %d)", ErrCorrupt, h.Creator.PID)
	case starting:
		return h, types, fmt.Errorf("%w: creator pid %d has not finished initializing", ErrNotReady, h.Creator.PID)
	case st != StateReady:
		return h, types, fmt.Errorf("%w: init state word %#x is not a known state", ErrCorrupt, st)
	}
	if err := h.Validate(size, desc); err != nil {
		return h, types, err
	}
	if typesErr != nil {
		return h, types, typesErr
	}
	return h, types, nil
}

// alsoIs is err, matching one more sentinel through errors.Is without
// saying so in its text.
type alsoIs struct{ err, also error }

func (e alsoIs) Error() string   { return e.err.Error() }
func (e alsoIs) Unwrap() []error { return []error{e.err, e.also} }
