package layout

import (
	"fmt"
	"strconv"
	"strings"
)

// LayoutType is one type of a parsed layout string (see ParseLayout).
type LayoutType struct {
	// Text is the type's own layout text, e.g. "uint64", "[4]uint32" or
	// "struct{A uint8@0; B uint64@8}#16/8": what Describe writes for it
	// after the ARCH/ORDER prefix.
	Text  string
	Size  uint64
	Align uint64 // structs only (their "/ALIGN"); 0 otherwise

	Fields []LayoutField // a struct's fields, in order
	Len    uint64        // an array's length
	Elem   *LayoutType   // an array's element type; nil for other types
}

// LayoutField is one field of a struct in a parsed layout string.
type LayoutField struct {
	Name string
	Type *LayoutType
	Off  uint64 // offset in the enclosing struct
}

// ParsedLayout is a layout string taken apart by ParseLayout.
type ParsedLayout struct {
	Arch  string // the writer's GOARCH, e.g. "amd64"
	Order string // byte order: "le" or "be"
	Type  *LayoutType
}

// maxLayoutDepth bounds the nesting ParseLayout accepts.
const maxLayoutDepth = 64

// ParseLayout parses a type layout string, the canonical description of an
// element type that Describe writes (TypeInfo.Layout) and every segment
// stores for each of its element types, e.g.
//
//	amd64/le struct{A uint32@0; Mu struct{next uint64@0; ...}#32/8@8}#40/8
//
// The grammar:
//
//	layout = ARCH "/" ORDER " " type
//	type   = prim | "[" LEN "]" type | struct
//	struct = "struct{" [field {"; " field}] "}#" SIZE "/" ALIGN
//	field  = NAME " " type "@" OFFSET
//	prim   = "bool" | "int8" | "uint8" | "int16" | "uint16" | "int32" |
//	         "uint32" | "int64" | "uint64" | "float32" | "float64" |
//	         "complex64" | "complex128" | "int(" N ")" | "uint(" N ")"
//
// ARCH is the writer's GOARCH and ORDER its byte order ("le" or "be");
// LEN, SIZE, ALIGN, OFFSET and N are decimal; int(N) and uint(N) are Go's
// int and uint of N (4 or 8) bytes. A prim's size is fixed by its name, an
// array's is LEN times its element's, a struct's is SIZE.
//
// A stored layout string comes from shared memory and is not trusted:
// ParseLayout bounds the nesting depth (64) and array sizes, never panics,
// and reports malformed input as an error that says at which byte. Offsets
// and sizes are parsed, not checked against each other: a caller that uses
// an offset to reach into memory bounds-checks it against the memory.
func ParseLayout(s string) (*ParsedLayout, error) {
	prefix, body, ok := strings.Cut(s, " ")
	if !ok {
		return nil, fmt.Errorf("layout %q: no architecture prefix", s)
	}
	arch, order, ok := strings.Cut(prefix, "/")
	if !ok || arch == "" || (order != "le" && order != "be") {
		return nil, fmt.Errorf("layout %q: prefix %q is not ARCH/le or ARCH/be", s, prefix)
	}
	p := &layoutParser{s: body}
	t, err := p.parseType()
	if err != nil {
		return nil, err
	}
	if p.i != len(p.s) {
		return nil, p.errorf("trailing text")
	}
	return &ParsedLayout{Arch: arch, Order: order, Type: t}, nil
}

// LayoutAt is one occurrence of a type inside another (see Find).
type LayoutAt struct {
	Path string // field path from the root, e.g. "Mu" or "Shards[3].Mu"; "T" for the root itself
	Off  uint64 // byte offset from the start of the root
}

// Find returns where the type whose layout text is text (LayoutType.Text,
// without the ARCH/ORDER prefix) occurs inside t, t itself included,
// expanding arrays element by element, in field order, up to limit
// occurrences. Offsets are sums of the parsed offsets: bounds-check them
// before use.
func (t *LayoutType) Find(text string, limit int) []LayoutAt {
	var out []LayoutAt
	var walk func(n *LayoutType, path string, base uint64)
	walk = func(n *LayoutType, path string, base uint64) {
		if len(out) >= limit || !strings.Contains(n.Text, text) {
			return
		}
		if n.Text == text {
			out = append(out, LayoutAt{Path: path, Off: base})
			return
		}
		if n.Elem != nil {
			for i := range n.Len {
				walk(n.Elem, fmt.Sprintf("%s[%d]", path, i), base+i*n.Elem.Size)
				if len(out) >= limit {
					return
				}
			}
		}
		for _, f := range n.Fields {
			p := f.Name
			if path != "" {
				p = path + "." + f.Name
			}
			walk(f.Type, p, base+f.Off)
		}
	}
	walk(t, "", 0)
	for i := range out {
		if out[i].Path == "" {
			out[i].Path = "T"
		}
	}
	return out
}

var primSizes = map[string]uint64{
	"bool": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4,
	"int64": 8, "uint64": 8, "float32": 4, "float64": 8, "complex64": 8, "complex128": 16,
	"int(8)": 8, "uint(8)": 8, "int(4)": 4, "uint(4)": 4,
}

type layoutParser struct {
	s     string
	i     int
	depth int
}

func (p *layoutParser) errorf(format string, a ...any) error {
	return fmt.Errorf("type layout at byte %d: %s", p.i, fmt.Sprintf(format, a...))
}

func (p *layoutParser) eat(lit string) bool {
	if strings.HasPrefix(p.s[p.i:], lit) {
		p.i += len(lit)
		return true
	}
	return false
}

func (p *layoutParser) number() (uint64, error) {
	j := p.i
	for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
		j++
	}
	v, err := strconv.ParseUint(p.s[p.i:j], 10, 64)
	if err != nil {
		return 0, p.errorf("want a number")
	}
	p.i = j
	return v, nil
}

func (p *layoutParser) parseType() (*LayoutType, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxLayoutDepth {
		return nil, p.errorf("nested too deeply")
	}
	start := p.i
	switch {
	case p.eat("["):
		n, err := p.number()
		if err != nil {
			return nil, err
		}
		if !p.eat("]") {
			return nil, p.errorf("want ]")
		}
		elem, err := p.parseType()
		if err != nil {
			return nil, err
		}
		if elem.Size != 0 && n > (1<<46)/elem.Size {
			return nil, p.errorf("array too large")
		}
		return &LayoutType{Text: p.s[start:p.i], Len: n, Elem: elem, Size: n * elem.Size}, nil
	case p.eat("struct{"):
		t := &LayoutType{}
		for !p.eat("}") {
			if len(t.Fields) > 0 && !p.eat("; ") {
				return nil, p.errorf("want ; or }")
			}
			sp := strings.IndexByte(p.s[p.i:], ' ')
			if sp <= 0 {
				return nil, p.errorf("want a field name")
			}
			name := p.s[p.i : p.i+sp]
			p.i += sp + 1
			ft, err := p.parseType()
			if err != nil {
				return nil, err
			}
			if !p.eat("@") {
				return nil, p.errorf("want @")
			}
			off, err := p.number()
			if err != nil {
				return nil, err
			}
			t.Fields = append(t.Fields, LayoutField{Name: name, Type: ft, Off: off})
		}
		if !p.eat("#") {
			return nil, p.errorf("want #")
		}
		size, err := p.number()
		if err != nil {
			return nil, err
		}
		if !p.eat("/") {
			return nil, p.errorf("want /")
		}
		align, err := p.number()
		if err != nil {
			return nil, err
		}
		t.Size, t.Align = size, align
		t.Text = p.s[start:p.i]
		return t, nil
	}
	j := p.i
	for j < len(p.s) && (p.s[j] >= 'a' && p.s[j] <= 'z' || p.s[j] >= '0' && p.s[j] <= '9' || p.s[j] == '(' || p.s[j] == ')') {
		j++
	}
	name := p.s[p.i:j]
	size, ok := primSizes[name]
	if !ok {
		return nil, p.errorf("unknown type %q", name)
	}
	p.i = j
	return &LayoutType{Text: name, Size: size}, nil
}

// layoutDiff names the first place where the layout strings a (the
// segment's) and b (the caller's) differ, for a type-mismatch error; ""
// when either does not parse or no difference is found below the root.
func layoutDiff(a, b string) string {
	pa, errA := ParseLayout(a)
	pb, errB := ParseLayout(b)
	if errA != nil || errB != nil {
		return ""
	}
	if pa.Arch != pb.Arch || pa.Order != pb.Order {
		return fmt.Sprintf("written by %s/%s, read by %s/%s", pa.Arch, pa.Order, pb.Arch, pb.Order)
	}
	return diffTypes(pa.Type, pb.Type, "T")
}

func diffTypes(a, b *LayoutType, path string) string {
	if a.Text == b.Text {
		return ""
	}
	if len(a.Fields) > 0 && len(b.Fields) > 0 {
		for i := range min(len(a.Fields), len(b.Fields)) {
			fa, fb := a.Fields[i], b.Fields[i]
			p := path + "." + fb.Name
			if fa.Name != fb.Name || fa.Off != fb.Off {
				return fmt.Sprintf("%s: segment has field %s %s at offset %d, caller %s %s at offset %d",
					p, fa.Name, fa.Type.Text, fa.Off, fb.Name, fb.Type.Text, fb.Off)
			}
			if d := diffTypes(fa.Type, fb.Type, p); d != "" {
				return d
			}
		}
		if len(a.Fields) != len(b.Fields) {
			return fmt.Sprintf("%s: segment has %d fields, caller %d", path, len(a.Fields), len(b.Fields))
		}
	}
	if a.Elem != nil && b.Elem != nil && a.Len == b.Len {
		return diffTypes(a.Elem, b.Elem, path+"[*]")
	}
	return fmt.Sprintf("%s: segment has %s, caller %s", path, a.Text, b.Text)
}
