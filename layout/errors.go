package layout

import (
	"errors"
	"fmt"
	"os"
)

// Sentinel errors shared by every shmkit package. Each is defined here once;
// the structure packages re-export the ones natural to them. Test with
// errors.Is: returned errors wrap these with detail (which field, which
// offset, which types).
var (
	// ErrTypeMismatch: the segment was created for another element type (or
	// another kind of structure) than the one asked for.
	ErrTypeMismatch = errors.New("shmkit: type mismatch")
	// ErrBadMagic: the object is not a shmkit segment.
	ErrBadMagic = errors.New("shmkit: bad magic (not a shmkit segment)")
	// ErrVersion: a shmkit segment of a format version this build cannot read.
	ErrVersion = errors.New("shmkit: unsupported format version")
	// ErrCorrupt: the segment's contents fail validation (checksum, bounds,
	// an index or length out of range). Shared memory is never trusted.
	ErrCorrupt = errors.New("shmkit: corrupt segment")
	// ErrTooSmall: the object is smaller than its header or layout needs.
	ErrTooSmall = errors.New("shmkit: segment too small")
	// ErrClosed: use after Close, or a queue closed for writes and drained.
	// It matches os.ErrClosed too.
	ErrClosed = fmt.Errorf("shmkit: closed: %w", os.ErrClosed)
	// ErrFull: a non-blocking insert found no room.
	ErrFull = errors.New("shmkit: full")
	// ErrEmpty: a non-blocking remove found nothing.
	ErrEmpty = errors.New("shmkit: empty")
	// ErrOwnerDead: the previous holder of a lock died holding it. The caller
	// now holds the lock; it must repair the protected data and mark the lock
	// consistent before unlocking.
	ErrOwnerDead = errors.New("shmkit: lock owner died")
	// ErrNotRecoverable: a robust lock whose owner died was unlocked without
	// being marked consistent; it can never be acquired again.
	ErrNotRecoverable = errors.New("shmkit: lock not recoverable")
	// ErrUnsupportedType: the Go type cannot live in shared memory (it holds
	// pointers, or has no fixed size). The error names the offending field.
	ErrUnsupportedType = errors.New("shmkit: unsupported type")
	// ErrNotReady: the segment is still being initialized by its creator, or
	// its creator died before finishing.
	ErrNotReady = errors.New("shmkit: segment not initialized")
	// ErrRoleTaken: a single-holder role (ring producer or consumer) is held
	// by another live process.
	ErrRoleTaken = errors.New("shmkit: role held by another process")
)
