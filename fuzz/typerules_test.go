package fuzz_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/shmkit/shmkit/layout"
)

// FuzzTypeRules checks layout.Describe against an independent statement of
// the type rules on struct shapes generated with reflect.StructOf:
//
//   - accepted iff no field anywhere (arrays of any length included) is a
//     bool (a peer can store any byte in it), a pointer-like or
//     variable-size kind, or a standard-library sync type;
//   - a rejection is a *TypeError wrapping ErrUnsupportedType whose Path
//     walks, field by field, to the first offending field in declaration
//     order, depth first;
//   - two accepted shapes have equal fingerprints iff their canonical
//     layouts (field names, offsets, sizes, kinds, array lengths, struct
//     size and alignment, recursively) are equal. The second shape is the
//     first with fuzz-chosen edits, some of which preserve the layout
//     (a defined type for its underlying type) and some of which do not.
func FuzzTypeRules(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 3, 2, 4, 2, 9, 2, 11, 1, 0, 0})
	f.Add([]byte{1, 4, 0, 2, 2, 0xff, 0, 1, 3, 2, 1, 0})
	f.Add([]byte("\x00\x05\x02\x10\x02\x13\x00\x02\x02\x01\x02\x07\x01\x01\x03\x02\x02\x04\x01"))
	f.Add([]byte("\x02\x04\x08\x03\x02\x11\x02\x12\x02\x08\x02\x15\x01\x01\x02\x02\x01\x05"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := &byteReader{b: in}
		a := genTop(r)
		b := a.clone()
		for range r.next() % 4 {
			b.edit(r)
		}
		ta, tb := a.build(), b.build()
		infoA, okA := checkRules(t, ta)
		infoB, okB := checkRules(t, tb)
		if !okA || !okB {
			return
		}
		sameCanon := canonical(ta) == canonical(tb)
		if sameFP := infoA.Fingerprint == infoB.Fingerprint; sameFP != sameCanon {
			t.Fatalf("fingerprints equal=%v but canonical layouts equal=%v\nA %v: %s\n  %s\nB %v: %s\n  %s",
				sameFP, sameCanon, ta, infoA.Layout, canonical(ta), tb, infoB.Layout, canonical(tb))
		}
		if (infoA.Layout == infoB.Layout) != sameCanon {
			t.Fatalf("layout strings equal=%v but canonical layouts equal=%v\nA %s\nB %s",
				infoA.Layout == infoB.Layout, sameCanon, infoA.Layout, infoB.Layout)
		}
	})
}

// checkRules runs Describe on typ and checks it against the independent
// predicate; it returns the description when typ was (rightly) accepted.
func checkRules(t *testing.T, typ reflect.Type) (layout.TypeInfo, bool) {
	t.Helper()
	root := "T"
	if typ.Name() != "" && typ.PkgPath() != "" {
		root = typ.Name()
	}
	wantBad, bad := firstOffender(typ, root)
	info, err := layout.Describe(typ)
	if bad {
		if err == nil {
			t.Fatalf("Describe accepted %v, which has %s", typ, wantBad)
		}
		var te *layout.TypeError
		if !errors.As(err, &te) || !errors.Is(err, layout.ErrUnsupportedType) {
			t.Fatalf("Describe(%v): error is not a *TypeError wrapping ErrUnsupportedType: %v", typ, err)
		}
		if te.Type != typ.String() {
			t.Fatalf("TypeError.Type %q, want %q", te.Type, typ.String())
		}
		if te.Path != wantBad {
			t.Fatalf("Describe(%v) blamed %q, first offending field is %q (%v)", typ, te.Path, wantBad, err)
		}
		leaf, perr := resolvePath(typ, root, te.Path)
		if perr != nil {
			t.Fatalf("TypeError path %q does not name a field of %v: %v", te.Path, typ, perr)
		}
		if !offendingLeaf(leaf) {
			t.Fatalf("TypeError path %q names %v, which is allowed", te.Path, leaf)
		}
		if !strings.Contains(err.Error(), te.Path) {
			t.Fatalf("error text does not name the field: %v", err)
		}
		return layout.TypeInfo{}, false
	}
	if err != nil {
		t.Fatalf("Describe rejected %v, which is pointer-free and fixed-size: %v", typ, err)
	}
	if info.Size != uint64(typ.Size()) || info.Align != uint64(typ.Align()) {
		t.Fatalf("Describe(%v) size/align %d/%d, reflect says %d/%d", typ, info.Size, info.Align, typ.Size(), typ.Align())
	}
	if info.Fingerprint != xxhash.Sum64String(info.Layout) {
		t.Fatalf("fingerprint %#x is not the hash of layout %q", info.Fingerprint, info.Layout)
	}
	if info.Name != typ.String() {
		t.Fatalf("name %q, want %q", info.Name, typ.String())
	}
	return info, true
}

// allowedKinds are the kinds whose bytes are their value, whatever a peer
// stores in them. Bool is not one: Go assumes its byte is 0 or 1.
var allowedKinds = map[reflect.Kind]bool{
	reflect.Int: true, reflect.Int8: true, reflect.Int16: true, reflect.Int32: true,
	reflect.Int64: true, reflect.Uint: true, reflect.Uint8: true, reflect.Uint16: true, reflect.Uint32: true,
	reflect.Uint64: true, reflect.Float32: true, reflect.Float64: true, reflect.Complex64: true,
	reflect.Complex128: true, reflect.Array: true, reflect.Struct: true,
}

// offendingLeaf reports whether typ itself (not its elements or fields) is
// refused: a process-local sync type, or a kind that holds an address or
// has no fixed size (uintptr counts as an address), or a bool.
func offendingLeaf(typ reflect.Type) bool {
	return typ.PkgPath() == "sync" || !allowedKinds[typ.Kind()]
}

// firstOffender returns the path of the first refused type in typ, depth
// first in field order. Arrays are looked into whatever their length: a
// [0]*T is refused too (it says "pointer" even if it holds none).
func firstOffender(typ reflect.Type, path string) (string, bool) {
	if offendingLeaf(typ) {
		return path, true
	}
	switch typ.Kind() {
	case reflect.Array:
		return firstOffender(typ.Elem(), path+"[*]")
	case reflect.Struct:
		for i := range typ.NumField() {
			f := typ.Field(i)
			if p, bad := firstOffender(f.Type, path+"."+f.Name); bad {
				return p, true
			}
		}
	}
	return "", false
}

// resolvePath follows a TypeError path ("T.F1[*].F0") through typ.
func resolvePath(typ reflect.Type, root, path string) (reflect.Type, error) {
	rest, ok := strings.CutPrefix(path, root)
	if !ok {
		return nil, fmt.Errorf("path does not start with the root %q", root)
	}
	for rest != "" {
		switch {
		case strings.HasPrefix(rest, "[*]"):
			if typ.Kind() != reflect.Array {
				return nil, fmt.Errorf("[*] on %v", typ)
			}
			typ, rest = typ.Elem(), rest[3:]
		case strings.HasPrefix(rest, "."):
			if typ.Kind() != reflect.Struct {
				return nil, fmt.Errorf("field of %v", typ)
			}
			end := strings.IndexAny(rest[1:], ".[")
			if end < 0 {
				end = len(rest) - 1
			}
			name := rest[1 : 1+end]
			var found bool
			for i := range typ.NumField() {
				if typ.Field(i).Name == name {
					typ, found = typ.Field(i).Type, true
					break
				}
			}
			if !found {
				return nil, fmt.Errorf("no field %q", name)
			}
			rest = rest[1+end:]
		default:
			return nil, fmt.Errorf("cannot parse %q", rest)
		}
	}
	return typ, nil
}

// canonical is this test's own statement of what a fingerprint must
// capture: every field's name, offset and type, every array's length,
// every scalar's kind and size, every struct's size and alignment. Type
// names are deliberately absent.
func canonical(typ reflect.Type) string {
	switch typ.Kind() {
	case reflect.Array:
		return "[" + strconv.Itoa(typ.Len()) + "]" + canonical(typ.Elem())
	case reflect.Struct:
		var b strings.Builder
		b.WriteString("{")
		for i := range typ.NumField() {
			f := typ.Field(i)
			fmt.Fprintf(&b, "%s@%d:%s;", f.Name, f.Offset, canonical(f.Type))
		}
		fmt.Fprintf(&b, "}%d/%d", typ.Size(), typ.Align())
		return b.String()
	}
	return typ.Kind().String() + "/" + strconv.Itoa(int(typ.Size()))
}

// The shapes the generator draws from.

type namedU32 uint32

type namedBool bool

var (
	goodLeaves = []reflect.Type{
		reflect.TypeFor[int8](), reflect.TypeFor[int16](), reflect.TypeFor[int32](),
		reflect.TypeFor[int64](), reflect.TypeFor[int](), reflect.TypeFor[uint8](), reflect.TypeFor[uint16](),
		reflect.TypeFor[uint32](), reflect.TypeFor[uint64](), reflect.TypeFor[uint](), reflect.TypeFor[float32](),
		reflect.TypeFor[float64](), reflect.TypeFor[complex64](), reflect.TypeFor[complex128](),
		reflect.TypeFor[namedU32](), reflect.TypeFor[time.Duration](), reflect.TypeFor[atomic.Int64](),
		reflect.TypeFor[atomic.Uint32](), reflect.TypeFor[atomic.Bool](), reflect.TypeFor[struct{}](),
	}
	badLeaves = []reflect.Type{
		reflect.TypeFor[uintptr](), reflect.TypeFor[*int](),
		// unsafe.Pointer, obtained without importing unsafe here.
		reflect.TypeOf(reflect.Value.UnsafePointer).Out(0),
		reflect.TypeFor[string](), reflect.TypeFor[[]byte](), reflect.TypeFor[map[int]int](),
		reflect.TypeFor[chan int](), reflect.TypeFor[func()](), reflect.TypeFor[any](), reflect.TypeFor[error](),
		reflect.TypeFor[sync.Mutex](), reflect.TypeFor[sync.WaitGroup](), reflect.TypeFor[atomic.Pointer[int]](),
		reflect.TypeFor[atomic.Value](), reflect.TypeFor[bool](), reflect.TypeFor[namedBool](),
	}
	// sameLayout pairs a type with one of identical layout (the fingerprint
	// ignores type names); differentLayout pairs same-size types of other
	// kinds.
	sameLayout = map[reflect.Type]reflect.Type{
		reflect.TypeFor[uint32]():        reflect.TypeFor[namedU32](),
		reflect.TypeFor[namedU32]():      reflect.TypeFor[uint32](),
		reflect.TypeFor[int64]():         reflect.TypeFor[time.Duration](),
		reflect.TypeFor[time.Duration](): reflect.TypeFor[int64](),
	}
	differentLayout = map[reflect.Type]reflect.Type{
		reflect.TypeFor[int32]():   reflect.TypeFor[uint32](),
		reflect.TypeFor[uint32]():  reflect.TypeFor[float32](),
		reflect.TypeFor[float32](): reflect.TypeFor[int32](),
		reflect.TypeFor[int64]():   reflect.TypeFor[int](),
		reflect.TypeFor[int]():     reflect.TypeFor[uint64](),
		reflect.TypeFor[uint64]():  reflect.TypeFor[uint](),
		reflect.TypeFor[uint]():    reflect.TypeFor[float64](),
		reflect.TypeFor[float64](): reflect.TypeFor[int64](),
		reflect.TypeFor[int8]():    reflect.TypeFor[uint8](),
		reflect.TypeFor[uint8]():   reflect.TypeFor[int8](),
		// bool (refused) edited to the same-size uint8 turns a refused
		// shape into an accepted one.
		reflect.TypeFor[bool]():      reflect.TypeFor[uint8](),
		reflect.TypeFor[namedBool](): reflect.TypeFor[bool](),
	}
)

type byteReader struct {
	b []byte
	i int
}

// next returns the next input byte, or 0 once the input is used up, so
// every input decodes to some shape.
func (r *byteReader) next() byte {
	if r.i >= len(r.b) {
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

// shape is a generated type before reflect builds it: a leaf, an array, or
// a struct.
type shape struct {
	leaf   reflect.Type
	n      int    // array length
	elem   *shape // array element
	fields []field
	struc  bool
}

type field struct {
	name string
	typ  *shape
}

const maxDepth = 3

func genTop(r *byteReader) *shape {
	if r.next()%4 != 0 {
		return genStruct(r, 0)
	}
	return genShape(r, 0)
}

func genStruct(r *byteReader, depth int) *shape {
	s := &shape{struc: true}
	for i := range int(r.next() % 6) {
		s.fields = append(s.fields, field{name: "F" + strconv.Itoa(i), typ: genShape(r, depth+1)})
	}
	return s
}

func genShape(r *byteReader, depth int) *shape {
	b := r.next()
	switch {
	case depth < maxDepth && b%8 == 0:
		return &shape{n: int(r.next() % 5), elem: genShape(r, depth+1)}
	case depth < maxDepth && b%8 == 1:
		return genStruct(r, depth)
	case b%8 == 2:
		return &shape{leaf: badLeaves[int(r.next())%len(badLeaves)]}
	}
	return &shape{leaf: goodLeaves[int(r.next())%len(goodLeaves)]}
}

func (s *shape) clone() *shape {
	c := *s
	if s.elem != nil {
		c.elem = s.elem.clone()
	}
	c.fields = nil
	for _, f := range s.fields {
		c.fields = append(c.fields, field{f.name, f.typ.clone()})
	}
	return &c
}

func (s *shape) nodes(out []*shape) []*shape {
	out = append(out, s)
	if s.elem != nil {
		out = s.elem.nodes(out)
	}
	for _, f := range s.fields {
		out = f.typ.nodes(out)
	}
	return out
}

// edit changes one node of s as the input says. Edits may or may not
// change the layout; canonical() is the judge, not the edit.
func (s *shape) edit(r *byteReader) {
	all := s.nodes(nil)
	n := all[int(r.next())%len(all)]
	switch r.next() % 6 {
	case 0: // rename a field (names are part of the layout)
		if len(n.fields) > 0 {
			j := int(r.next()) % len(n.fields)
			n.fields[j].name = n.unusedName()
		}
	case 1: // a defined type for its underlying type, or back
		if t, ok := sameLayout[n.leaf]; ok {
			n.leaf = t
		}
	case 2: // another kind of the same size
		if t, ok := differentLayout[n.leaf]; ok {
			n.leaf = t
		}
	case 3: // another array length
		if n.elem != nil {
			n.n = (n.n + 1 + int(r.next()%3)) % 5
		}
	case 4: // swap adjacent fields
		if len(n.fields) > 1 {
			j := int(r.next()) % (len(n.fields) - 1)
			n.fields[j], n.fields[j+1] = n.fields[j+1], n.fields[j]
		}
	case 5: // replace the node entirely
		*n = *genShape(r, maxDepth-1)
	}
}

func (s *shape) unusedName() string {
	for i := 0; ; i++ {
		name := "R" + strconv.Itoa(i)
		if !slices.ContainsFunc(s.fields, func(f field) bool { return f.name == name }) {
			return name
		}
	}
}

func (s *shape) build() reflect.Type {
	switch {
	case s.leaf != nil:
		return s.leaf
	case s.elem != nil:
		return reflect.ArrayOf(s.n, s.elem.build())
	}
	fs := make([]reflect.StructField, len(s.fields))
	for i, f := range s.fields {
		fs[i] = reflect.StructField{Name: f.name, Type: f.typ.build()}
	}
	return reflect.StructOf(fs)
}
