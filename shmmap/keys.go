package shmmap

import (
	"reflect"

	"github.com/shmkit/shmkit/layout"
)

// span is a run of bytes of a value that belong to its fields: everything
// outside the spans is padding, which may hold garbage (a struct copied
// into shared memory keeps whatever bytes its padding had).
type span struct {
	off, len uintptr
}

// byteSpans walks t and returns the non-padding byte spans of a value of t
// in address order, adjacent spans merged. With allowFloat false, float and
// complex fields are rejected with ErrUnsupportedType: == on them is not
// bitwise equality (+0 == -0 but their bytes differ; NaN != NaN), so equal
// keys could hash differently and a NaN key could never be found again.
func byteSpans(t reflect.Type, allowFloat bool) ([]span, error) {
	var spans []span
	var walk func(t reflect.Type, off uintptr, path string) error
	walk = func(t reflect.Type, off uintptr, path string) error {
		switch t.Kind() {
		case reflect.Struct:
			for i := range t.NumField() {
				f := t.Field(i)
				if err := walk(f.Type, off+f.Offset, path+"."+f.Name); err != nil {
					return err
				}
			}
			return nil
		case reflect.Array:
			n := t.Len()
			if n == 0 {
				return nil
			}
			elem := t.Elem()
			// An array of padding-free elements is one span; walk the
			// first element only to find out.
			sub, err := byteSpans(elem, allowFloat)
			if err != nil {
				return &layout.TypeError{Type: path, Path: path + "[*]", Reason: err.Error()}
			}
			for i := range n {
				base := off + uintptr(i)*elem.Size()
				for _, s := range sub {
					spans = appendSpan(spans, span{base + s.off, s.len})
				}
			}
			return nil
		case reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
			if !allowFloat {
				return &layout.TypeError{Type: t.String(), Path: path,
					Reason: "is a floating-point field: == is not bitwise (-0 == +0, NaN != NaN), so it cannot be a map key; key on math.Float64bits instead"}
			}
		}
		if t.Size() > 0 {
			spans = appendSpan(spans, span{off, t.Size()})
		}
		return nil
	}
	if err := walk(t, 0, rootName(t)); err != nil {
		return nil, err
	}
	return spans, nil
}

func appendSpan(spans []span, s span) []span {
	if n := len(spans); n > 0 && spans[n-1].off+spans[n-1].len == s.off {
		spans[n-1].len += s.len
		return spans
	}
	return append(spans, s)
}

func rootName(t reflect.Type) string {
	if t.Name() != "" {
		return t.Name()
	}
	return "K"
}

// spanBytes is the number of bytes covered by spans.
func spanBytes(spans []span) uintptr {
	var n uintptr
	for _, s := range spans {
		n += s.len
	}
	return n
}

// dense reports whether spans cover all size bytes (no padding).
func dense(spans []span, size uintptr) bool {
	return size == 0 || (len(spans) == 1 && spans[0].off == 0 && spans[0].len == size)
}
