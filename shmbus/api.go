package shmbus

import (
	"github.com/shmkit/shmkit/internal/options"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
)

// Sentinel errors, the same set re-exported the same way by every structure
// package (defined once in package layout). Test with errors.Is.
var (
	ErrTypeMismatch    = layout.ErrTypeMismatch
	ErrBadMagic        = layout.ErrBadMagic
	ErrVersion         = layout.ErrVersion
	ErrCorrupt         = layout.ErrCorrupt
	ErrTooSmall        = layout.ErrTooSmall
	ErrClosed          = layout.ErrClosed
	ErrFull            = layout.ErrFull
	ErrEmpty           = layout.ErrEmpty
	ErrOwnerDead       = layout.ErrOwnerDead
	ErrUnsupportedType = layout.ErrUnsupportedType
	ErrLagged          = layout.ErrLagged
	ErrNotReady        = layout.ErrNotReady
	ErrUntrusted       = layout.ErrUntrusted
	ErrRoleTaken       = layout.ErrRoleTaken
	ErrCapacity        = layout.ErrCapacity
)

// Option configures Create and Open. Every shmkit structure takes the same
// option vocabulary; the constructors below mean the same in each.
type Option = options.Option

// Options every structure takes.
var (
	WithMode        = options.WithMode        // permission bits of a created segment (default 0600)
	WithPopulate    = options.WithPopulate    // pre-fault the mapping
	WithSegment     = options.WithSegment     // segment-layer options (e.g. segment.WithTrustOwner)
	WithLayout      = options.WithLayout      // layout-layer options
	WithInitTimeout = options.WithInitTimeout // how long Open waits for a live creator
	WithWaitPolicy  = options.WithWaitPolicy  // how this handle's blocking calls wait
)

// Remove removes the bus segment named by spec: everything a bus makes.
// Handles still open keep their mapping until Close.
func Remove(spec string) error { return segment.Remove(spec) }
