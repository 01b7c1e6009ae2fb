// Package shmerr defines every sentinel error of shmkit once, and OpError,
// the one error shape. Package layout re-exports them for users, and every
// structure package re-exports the same set; segment, which sits below
// layout, uses them from here.
package shmerr

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Sentinel errors shared by every shmkit package. Each is defined here once;
// layout and every structure package re-export all of them. Test with
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

// More sentinels, shared the same way.
var (
	// ErrCapacity: a capacity (or other size parameter) out of range. The
	// error names the value and the allowed range.
	ErrCapacity = errors.New("shmkit: invalid capacity")
	// ErrLagged: an overwriting bus lapped this subscriber; see
	// shmbus.LaggedError for how many messages it missed.
	ErrLagged = errors.New("shmkit: subscriber lagged")
	// ErrUsage: a call out of protocol order (Publish of more than was
	// claimed, Advance past what was peeked, a zero-copy call a mode does
	// not offer).
	ErrUsage = errors.New("shmkit: invalid call")
	// ErrBadOption: an option that is invalid or is for another structure.
	ErrBadOption = errors.New("shmkit: invalid option")
	// ErrUntrusted: the segment is owned by another unprivileged user who
	// could have planted it, and no trust option names that owner. It
	// matches fs.ErrPermission too.
	ErrUntrusted = fmt.Errorf("shmkit: untrusted segment: %w", fs.ErrPermission)
)

// OpError is the one error shape of every structure package: which package,
// which operation, on which segment, and why. Err wraps the sentinel, so
// errors.Is works through it. Its message reads
//
//	shmring: open posix:/ticks: shmkit: type mismatch: ...
type OpError struct {
	Pkg  string // "shmring", "shmqueue", "shmmap", "shmbus", "layout", "segment"
	Op   string // "create", "open", "push", "pop", "close", ...
	Spec string // the segment spec, "" when there is none
	Err  error
}

func (e *OpError) Error() string {
	if e.Spec == "" {
		return e.Pkg + ": " + e.Op + ": " + e.Err.Error()
	}
	return e.Pkg + ": " + e.Op + " " + e.Spec + ": " + e.Err.Error()
}

func (e *OpError) Unwrap() error { return e.Err }

// WrapOp returns err wrapped in an OpError naming pkg, op and spec, or nil
// when err is nil. An OpError from a lower layer (segment, layout) about the
// same segment is relabelled, not nested: the user called shmring.Open, so
// the message says "shmring: open posix:/x: ..." once, whatever layer found
// the problem.
func WrapOp(pkg, op, spec string, err error) error {
	// Small enough to inline: the per-item calls wrap their nil error on
	// every item, and that must cost a compare, not a call.
	if err == nil {
		return nil
	}
	return wrapOp(pkg, op, spec, err)
}

func wrapOp(pkg, op, spec string, err error) error {
	var oe *OpError
	if errors.As(err, &oe) {
		if oe.Pkg == pkg {
			return err
		}
		if oe == err && (oe.Spec == spec || oe.Spec == "") {
			return &OpError{Pkg: pkg, Op: op, Spec: spec, Err: oe.Err}
		}
	}
	return &OpError{Pkg: pkg, Op: op, Spec: spec, Err: err}
}
