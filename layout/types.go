package layout

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// Type rules
//
// A type may live in shared memory when its bytes are its whole value: no
// pointers (another process's addresses mean nothing here, and the garbage
// collector cannot see into the mapping) and a size fixed at compile time.
// Accepted: sized ints and uints, int and uint, floats, complex numbers,
// arrays and structs of accepted types, and the sync/atomic value types
// (atomic.Int64, atomic.Uint32, atomic.Bool, ...), which are structs of such
// words. Rejected, with the field path named: bool, pointers, uintptr,
// unsafe.Pointer, strings, slices, maps, chans, funcs, interfaces, and the
// standard library's sync types (a sync.Mutex in shared memory would park
// goroutines on a process-local semaphore; use shmkit's sync.Mutex).
//
// bool is refused because a peer can store any byte in it, and compiled Go
// code assumes a bool's byte is 0 or 1: it indexes with it without a bounds
// check (labels[b2i(x)]), and may test x with either x != 0 or x == 1, so a
// 2 is true in one place and false in the next. Use uint8 and compare it
// with 0 (atomic.Bool is accepted: it is a uint32 read as v != 0).
//
// int and uint are accepted; their size (8 on 64-bit) is part of the
// fingerprint, as is GOARCH, so a 32-bit process that opens a segment made
// by a 64-bit one gets ErrTypeMismatch instead of misreading every field.
//
// Fingerprint
//
// Each accepted type has a canonical layout string: GOARCH, byte order, and,
// recursively, every field's name, offset, size and kind, e.g.
//
//	amd64/le struct{A uint8@0; B uint64@8}#16/8
//
// The fingerprint is the xxhash64 of that string. The string itself is stored
// in the segment, so a mismatch can say exactly what both sides expected and
// shmctl can show what a segment holds. The type's own name is stored for
// display but is not part of the fingerprint: renaming a type, or moving it
// to another package, keeps its segments readable.

// TypeError reports a type that cannot live in shared memory.
type TypeError struct {
	Type   string // the root type, e.g. "main.Order"
	Path   string // the offending field path, e.g. "Order.Legs[*].Venue"
	Reason string
}

func (e *TypeError) Error() string {
	return fmt.Sprintf("shmkit: unsupported type %s: %s %s", e.Type, e.Path, e.Reason)
}

// Unwrap makes errors.Is(err, ErrUnsupportedType) true.
func (e *TypeError) Unwrap() error { return ErrUnsupportedType }

// TypeInfo describes an accepted type.
type TypeInfo struct {
	Name        string // Go type name for display, e.g. "main.Order"
	Layout      string // canonical layout string (see package doc)
	Fingerprint uint64 // xxhash64 of Layout
	Size        uint64
	Align       uint64
}

func (ti TypeInfo) String() string { return ti.Name + " " + ti.Layout }

// Describe checks t against the type rules and returns its description.
func Describe(t reflect.Type) (TypeInfo, error) {
	if t == nil {
		return TypeInfo{}, &TypeError{Type: "<nil>", Path: "<nil>", Reason: "is not a type (nil interface)"}
	}
	name := t.String()
	w := walker{root: name}
	var b strings.Builder
	b.WriteString(runtime.GOARCH)
	b.WriteString(byteOrderTag)
	b.WriteByte(' ')
	if err := w.walk(&b, t, rootPath(t)); err != nil {
		return TypeInfo{}, err
	}
	layout := b.String()
	return TypeInfo{
		Name:        name,
		Layout:      layout,
		Fingerprint: xxhash.Sum64String(layout),
		Size:        uint64(t.Size()),
		Align:       uint64(t.Align()),
	}, nil
}

// DescribeOf is Describe for a type parameter.
func DescribeOf[T any]() (TypeInfo, error) {
	return Describe(reflect.TypeFor[T]())
}

var byteOrderTag = func() string {
	var probe [2]byte
	binary.NativeEndian.PutUint16(probe[:], 1)
	if probe[0] == 1 {
		return "/le"
	}
	return "/be"
}()

func rootPath(t reflect.Type) string {
	if t.Name() != "" && t.PkgPath() != "" {
		return t.Name()
	}
	return "T"
}

type walker struct{ root string }

func (w *walker) reject(path, reason string) error {
	return &TypeError{Type: w.root, Path: path, Reason: reason}
}

func (w *walker) walk(b *strings.Builder, t reflect.Type, path string) error {
	if t.PkgPath() == "sync" {
		return w.reject(path, "is "+t.String()+", which only works inside one process; use github.com/shmkit/shmkit/sync")
	}
	switch k := t.Kind(); k {
	case reflect.Bool:
		return w.reject(path, "is a bool: a peer can store any byte in it; use uint8")
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		b.WriteString(k.String())
	case reflect.Int, reflect.Uint:
		// Size-qualified: see "int and uint" in the package doc.
		b.WriteString(k.String())
		b.WriteByte('(')
		b.WriteString(strconv.FormatUint(uint64(t.Size()), 10))
		b.WriteByte(')')
	case reflect.Array:
		b.WriteByte('[')
		b.WriteString(strconv.Itoa(t.Len()))
		b.WriteByte(']')
		return w.walk(b, t.Elem(), path+"[*]")
	case reflect.Struct:
		b.WriteString("struct{")
		for i := range t.NumField() {
			f := t.Field(i)
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(f.Name)
			b.WriteByte(' ')
			if err := w.walk(b, f.Type, path+"."+f.Name); err != nil {
				return err
			}
			b.WriteByte('@')
			b.WriteString(strconv.FormatUint(uint64(f.Offset), 10))
		}
		b.WriteString("}#")
		b.WriteString(strconv.FormatUint(uint64(t.Size()), 10))
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(t.Align()))
	case reflect.Pointer:
		return w.reject(path, "is a pointer ("+t.String()+"): addresses mean nothing in another process")
	case reflect.UnsafePointer:
		return w.reject(path, "is an unsafe.Pointer: addresses mean nothing in another process")
	case reflect.Uintptr:
		return w.reject(path, "is a uintptr: addresses mean nothing in another process")
	case reflect.String:
		return w.reject(path, "is a string (a pointer and a length); use a fixed [N]byte")
	case reflect.Slice:
		return w.reject(path, "is a slice ("+t.String()+"); use a fixed-size array")
	case reflect.Map:
		return w.reject(path, "is a map ("+t.String()+"); use shmmap.Map")
	case reflect.Chan:
		return w.reject(path, "is a channel ("+t.String()+")")
	case reflect.Func:
		return w.reject(path, "is a func ("+t.String()+")")
	case reflect.Interface:
		return w.reject(path, "is an interface ("+t.String()+")")
	default:
		return w.reject(path, "has unsupported kind "+k.String())
	}
	return nil
}
