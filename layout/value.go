package layout

import (
	"fmt"
	"reflect"
)

// Value is one T placed in a shared segment: every process that opens the
// segment sees the same *T. T follows the type rules; put shmkit sync types
// or sync/atomic values in it to coordinate.
//
//	type Counters struct {
//		Mu    sync.Mutex // github.com/shmkit/shmkit/sync
//		Count int64
//	}
//	v, err := layout.CreateValue[Counters]("posix:/counters")
//	c := v.Ptr()
//
// The pointer stays valid until Close; using it afterwards faults.
type Value[T any] struct {
	seg *Segment
	p   *T
}

// CreateValue creates a segment holding one zero T.
func CreateValue[T any](spec string, opts ...Option) (*Value[T], error) {
	t := reflect.TypeFor[T]()
	if _, err := Describe(t); err != nil {
		return nil, err
	}
	d := Desc{
		Kind:     KindValue,
		Types:    []reflect.Type{t},
		Capacity: 1,
		Regions:  []Region{{Size: uint64(t.Size()), Align: uint64(t.Align())}},
	}
	s, err := Create(spec, d, nil, opts...)
	if err != nil {
		return nil, err
	}
	return valueOf[T](s)
}

// OpenValue opens a segment made by CreateValue with the same T.
func OpenValue[T any](spec string, opts ...Option) (*Value[T], error) {
	t := reflect.TypeFor[T]()
	if _, err := Describe(t); err != nil {
		return nil, err
	}
	s, err := Open(spec, Expect{Kind: KindValue, Types: []reflect.Type{t}}, opts...)
	if err != nil {
		return nil, err
	}
	return valueOf[T](s)
}

func valueOf[T any](s *Segment) (*Value[T], error) {
	p, err := View[T](s, 0)
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("layout: value: %w", err)
	}
	return &Value[T]{seg: s, p: p}, nil
}

// Ptr returns the shared T.
func (v *Value[T]) Ptr() *T { return v.p }

// Segment returns the underlying segment.
func (v *Value[T]) Segment() *Segment { return v.seg }

// Close unmaps the segment; the object stays until segment.Remove.
func (v *Value[T]) Close() error { return v.seg.Close() }
