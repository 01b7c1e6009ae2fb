package main

import (
	"fmt"
	"strconv"
	"strings"
)

// A stored type layout string (see package layout, "Fingerprint") describes
// every field of an element type with its offset:
//
//	amd64/le struct{A uint32@0; Mu struct{next uint64@0; ...}#32/8@8}#40/8
//
// shmctl parses it to find the shmkit sync.Mutex values inside a Value[T]
// segment (a struct of counters guarded by a shared mutex is what values
// are for), so it can show their owners. The grammar, as layout writes it:
//
//	layout = ARCH "/" ORDER " " type
//	type   = prim | "[" N "]" type | "struct{" [field {"; " field}] "}#" SIZE "/" ALIGN
//	field  = NAME " " type "@" OFFSET
//	prim   = "int8" ... | "int(8)" | "uint(8)" | "bool"
//
// ("bool" is refused in shared types now, but a segment an older writer
// made may still say it; shmctl only needs its size, never its value.)
//
// The string comes from the segment and is not trusted: the parser bounds
// its depth and reports malformed input as an error.

// typeNode is one parsed type.
type typeNode struct {
	text   string // the type's own layout text, e.g. "uint64" or "struct{...}#32/8"
	size   uint64
	fields []fieldNode // struct
	n      uint64      // array length
	elem   *typeNode   // array element
}

type fieldNode struct {
	name string
	typ  *typeNode
	off  uint64
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

// parseTypeLayout parses a full layout string (with its ARCH/ORDER prefix).
func parseTypeLayout(s string) (*typeNode, error) {
	_, body, ok := strings.Cut(s, " ")
	if !ok {
		return nil, fmt.Errorf("layout %q: no architecture prefix", s)
	}
	p := &layoutParser{s: body}
	n, err := p.parseType()
	if err != nil {
		return nil, err
	}
	if p.i != len(p.s) {
		return nil, p.errorf("trailing text")
	}
	return n, nil
}

// typeBody strips the ARCH/ORDER prefix from a layout string.
func typeBody(s string) string {
	_, body, _ := strings.Cut(s, " ")
	return body
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

func (p *layoutParser) parseType() (*typeNode, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > 64 {
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
		if elem.size != 0 && n > (1<<46)/elem.size {
			return nil, p.errorf("array too large")
		}
		return &typeNode{text: p.s[start:p.i], n: n, elem: elem, size: n * elem.size}, nil
	case p.eat("struct{"):
		t := &typeNode{}
		for !p.eat("}") {
			if len(t.fields) > 0 && !p.eat("; ") {
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
			t.fields = append(t.fields, fieldNode{name: name, typ: ft, off: off})
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
		if _, err := p.number(); err != nil {
			return nil, err
		}
		t.size = size
		t.text = p.s[start:p.i]
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
	return &typeNode{text: name, size: size}, nil
}

// located is one occurrence of a type inside another.
type located struct {
	path string // e.g. "Mu", "Shards[3].Mu"
	off  uint64
}

// findType returns where the type whose layout text is want occurs inside
// t (t itself included, as path "T"), expanding arrays, up to limit
// occurrences. Offsets are checked against t's size.
func findType(t *typeNode, want string, limit int) []located {
	var out []located
	var walk func(n *typeNode, path string, base uint64)
	walk = func(n *typeNode, path string, base uint64) {
		if len(out) >= limit || !strings.Contains(n.text, want) {
			return
		}
		if n.text == want {
			out = append(out, located{path: path, off: base})
			return
		}
		if n.elem != nil {
			for i := range n.n {
				walk(n.elem, fmt.Sprintf("%s[%d]", path, i), base+i*n.elem.size)
				if len(out) >= limit {
					return
				}
			}
		}
		for _, f := range n.fields {
			p := f.name
			if path != "" {
				p = path + "." + f.name
			}
			walk(f.typ, p, base+f.off)
		}
	}
	walk(t, "", 0)
	for i := range out {
		if out[i].path == "" {
			out[i].path = "T"
		}
	}
	return out
}
