package layout

import (
	"fmt"
	"reflect"
	"time"

	"github.com/shmkit/shmkit/internal/mem"
	"github.com/shmkit/shmkit/segment"
)

// Region asks for one section of a segment.
type Region struct {
	Size  uint64
	Align uint64 // a power of two; 0 means LineSize. Never less than LineSize.
}

// Desc is what a structure asks Create for.
type Desc struct {
	Kind     Kind
	Types    []reflect.Type // element types in order: T, or K then V
	Capacity uint64
	Flags    uint32
	Params   [MaxParams]uint64
	Regions  []Region
}

// Expect is what a structure asks Open to verify.
type Expect struct {
	Kind  Kind           // KindAny accepts any kind (tools)
	Types []reflect.Type // nil: do not check types (tools)
}

// Options tune Create and Open.
type Options struct {
	Segment     []segment.Option
	InitTimeout time.Duration // how long Open waits for a creator to finish; default 2s
}

// Option sets an Options field.
type Option func(*Options)

// WithSegment passes options to the segment layer (mode, populate, read-only).
func WithSegment(opts ...segment.Option) Option {
	return func(o *Options) { o.Segment = append(o.Segment, opts...) }
}

// WithInitTimeout sets how long Open waits for a segment whose creator is
// still initializing it.
func WithInitTimeout(d time.Duration) Option {
	return func(o *Options) { o.InitTimeout = d }
}

// DefaultInitTimeout is how long Open waits for a live creator.
const DefaultInitTimeout = 2 * time.Second

func buildOptions(opts []Option) Options {
	o := Options{InitTimeout: DefaultInitTimeout}
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

// Segment is an attached shmkit segment with a validated header.
//
// The region slices alias shared memory and stay valid until Close; using
// them after Close faults. A Segment may be used from many goroutines; Close
// must not race with other use.
type Segment struct {
	raw     *segment.Segment
	hdr     Header // private, validated copy
	types   []TypeInfo
	regions [][]byte
}

// Header returns the validated private copy of the header.
func (s *Segment) Header() *Header { return &s.hdr }

// Types returns the stored descriptions of the element types.
func (s *Segment) Types() []TypeInfo { return s.types }

// Region returns region i, which the header validated to lie inside the
// mapping. It returns nil for an index the header does not have.
func (s *Segment) Region(i int) []byte {
	if i < 0 || i >= len(s.regions) {
		return nil
	}
	return s.regions[i]
}

// NumRegions returns how many regions the segment has.
func (s *Segment) NumRegions() int { return len(s.regions) }

// Raw returns the underlying OS segment.
func (s *Segment) Raw() *segment.Segment { return s.raw }

// Close unmaps the segment. The object stays until Remove.
func (s *Segment) Close() error { return s.raw.Close() }

// View returns region i of s as *T, checking size and alignment.
func View[T any](s *Segment, i int) (*T, error) {
	p, err := mem.Ptr[T](s.Region(i))
	if err != nil {
		return nil, fmt.Errorf("%w: region %d: %w", ErrCorrupt, i, err)
	}
	return p, nil
}

// ViewSlice returns region i of s as n consecutive T.
func ViewSlice[T any](s *Segment, i int, n int) ([]T, error) {
	v, err := mem.Slice[T](s.Region(i), n)
	if err != nil {
		return nil, fmt.Errorf("%w: region %d: %w", ErrCorrupt, i, err)
	}
	return v, nil
}
