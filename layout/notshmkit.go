package layout

import (
	"fmt"
)

// headRead bounds how much of an all-zero object notShmkit and notReady scan.
const headRead = 64 << 10

// notShmkit is the ErrBadMagic error for an object whose first bytes b
// (of size in all) are not a shmkit header, saying what they are.
func notShmkit(b []byte, size int) error {
	b = b[:min(len(b), headRead)]
	switch {
	case size == 0:
		return fmt.Errorf("%w: the object is empty (0 bytes)", ErrBadMagic)
	case allZero(b):
		return fmt.Errorf("%w: its first %d bytes are all zero (a shmkit segment begins with %q)", ErrBadMagic, len(b), Magic[:])
	case len(b) >= len(Magic) && [8]byte(b[:8]) == Magic && allZero(b[8:]):
		return fmt.Errorf("%w: it begins with the shmkit magic %q but no header follows (the next %d bytes are zero)", ErrBadMagic, Magic[:], len(b)-8)
	}
	return fmt.Errorf("%w: first bytes are %s (a shmkit segment begins with %q)", ErrBadMagic, firstBytes(b), Magic[:])
}

// firstBytes shows up to 16 bytes of b in hex and as a quoted string.
func firstBytes(b []byte) string {
	b = b[:min(len(b), 16)]
	return fmt.Sprintf("% x (%q)", b, b)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
