package layout

import "github.com/shmkit/shmkit/internal/shmerr"

// Sentinel errors shared by every shmkit package, defined once (in
// internal/shmerr) and re-exported here and, the same way, by every structure
// package. Test with errors.Is: returned errors wrap these with detail (which
// field, which offset, which types).
var (
	ErrTypeMismatch    = shmerr.ErrTypeMismatch    // created for another element type or kind
	ErrBadMagic        = shmerr.ErrBadMagic        // not a shmkit segment
	ErrVersion         = shmerr.ErrVersion         // a format version this build cannot read
	ErrCorrupt         = shmerr.ErrCorrupt         // contents fail validation
	ErrTooSmall        = shmerr.ErrTooSmall        // smaller than its header or layout needs
	ErrClosed          = shmerr.ErrClosed          // use after Close, or closed for writes and drained; matches os.ErrClosed
	ErrFull            = shmerr.ErrFull            // a non-blocking insert found no room
	ErrEmpty           = shmerr.ErrEmpty           // a non-blocking remove found nothing
	ErrOwnerDead       = shmerr.ErrOwnerDead       // the previous lock holder died; repair, MarkConsistent, Unlock
	ErrNotRecoverable  = shmerr.ErrNotRecoverable  // a dead owner's lock was unlocked unrepaired
	ErrUnsupportedType = shmerr.ErrUnsupportedType // the Go type cannot live in shared memory
	ErrNotReady        = shmerr.ErrNotReady        // being initialized, or its creator died doing so
	ErrRoleTaken       = shmerr.ErrRoleTaken       // a single-holder role is held by another live process
	ErrCapacity        = shmerr.ErrCapacity        // a capacity out of range
	ErrLagged          = shmerr.ErrLagged          // a bus subscriber was lapped
	ErrUntrusted       = shmerr.ErrUntrusted       // planted by another unprivileged user; matches fs.ErrPermission
	ErrUsage           = shmerr.ErrUsage           // a call out of protocol order
	ErrBadOption       = shmerr.ErrBadOption       // an invalid option, or one for another structure
)

// OpError is the one error shape of every structure package: package,
// operation, spec, cause. See WrapOp.
type OpError = shmerr.OpError

// WrapOp wraps err in an OpError naming pkg, op and spec (nil stays nil).
func WrapOp(pkg, op, spec string, err error) error { return shmerr.WrapOp(pkg, op, spec, err) }
