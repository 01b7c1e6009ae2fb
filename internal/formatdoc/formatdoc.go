// Package formatdoc reads the byte-exact tables of docs/FORMAT.md so that
// each package's tests can hold its shared-memory types to them: the
// document cannot drift from the code.
//
// A table is announced by an HTML comment on the line before it:
//
//	<!-- table: PKG.TYPE -->
//	| Offset | Size | Field | ... |
//	|---:|---:|---|...|
//	| 0 | 8 | `tail` | ... |
//	| 8 | 120 | — | padding |
//	|   | 640 | (total) | |
//
// Offset and Size are decimal. Field is a Go field path (Creator.PID,
// Types[1].Size), "—" for padding, or "(total)" for the size of the whole
// type. Top-level rows (paths without '.' or '[') must tile the type from 0
// to its total size, padding included.
//
// A constants table is announced with <!-- consts: PKG --> and has Name and
// Value (decimal or 0x hex) as its first two columns.
package formatdoc

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Row is one row of a struct table.
type Row struct {
	Line  int
	Off   uint64 // unset (0) for the total row
	Size  uint64
	Field string // Go field path, "" for padding, "(total)" for the total
}

// Table is one struct table of FORMAT.md.
type Table struct {
	Name string // PKG.TYPE
	Line int
	Rows []Row
}

// Const is one row of a constants table.
type Const struct {
	Line  int
	Name  string
	Value uint64
}

// Doc is FORMAT.md, parsed.
type Doc struct {
	Path   string
	Tables map[string]*Table
	Consts map[string][]Const // by package
}

// Path returns the location of docs/FORMAT.md in this source tree.
func Path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "docs", "FORMAT.md")
}

// Load parses docs/FORMAT.md.
func Load() (*Doc, error) {
	return ParseFile(Path())
}

// ParseFile parses a FORMAT.md-style document.
func ParseFile(path string) (*Doc, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := &Doc{Path: path, Tables: map[string]*Table{}, Consts: map[string][]Const{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		kind, name, ok := marker(l)
		if !ok {
			continue
		}
		// The table: the next run of lines starting with '|', skipping the
		// header and separator rows.
		j := i + 1
		for j < len(lines) && strings.TrimSpace(lines[j]) == "" {
			j++
		}
		var rows [][]string
		var rowLines []int
		for ; j < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[j]), "|"); j++ {
			rows = append(rows, cells(lines[j]))
			rowLines = append(rowLines, j+1)
		}
		if len(rows) < 3 {
			return nil, fmt.Errorf("%s:%d: %s %s: no table follows", path, i+1, kind, name)
		}
		rows, rowLines = rows[2:], rowLines[2:]
		switch kind {
		case "table":
			if d.Tables[name] != nil {
				return nil, fmt.Errorf("%s:%d: table %s defined twice", path, i+1, name)
			}
			t := &Table{Name: name, Line: i + 1}
			for k, r := range rows {
				row, err := parseRow(r)
				if err != nil {
					return nil, fmt.Errorf("%s:%d: %w", path, rowLines[k], err)
				}
				row.Line = rowLines[k]
				t.Rows = append(t.Rows, row)
			}
			d.Tables[name] = t
		case "consts":
			for k, r := range rows {
				if len(r) < 2 {
					return nil, fmt.Errorf("%s:%d: want Name | Value", path, rowLines[k])
				}
				v, err := strconv.ParseUint(strings.Trim(r[1], "`"), 0, 64)
				if err != nil {
					return nil, fmt.Errorf("%s:%d: value %q: %w", path, rowLines[k], r[1], err)
				}
				d.Consts[name] = append(d.Consts[name], Const{Line: rowLines[k], Name: strings.Trim(r[0], "`"), Value: v})
			}
		}
		i = j - 1
	}
	return d, nil
}

func marker(l string) (kind, name string, ok bool) {
	if !strings.HasPrefix(l, "<!--") || !strings.HasSuffix(l, "-->") {
		return "", "", false
	}
	body := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(l, "<!--"), "-->"))
	kind, name, ok = strings.Cut(body, ":")
	kind, name = strings.TrimSpace(kind), strings.TrimSpace(name)
	if !ok || (kind != "table" && kind != "consts") || name == "" {
		return "", "", false
	}
	return kind, name, true
}

func cells(l string) []string {
	l = strings.TrimSpace(l)
	l = strings.TrimPrefix(l, "|")
	l = strings.TrimSuffix(l, "|")
	parts := strings.Split(l, "|")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

func parseRow(c []string) (Row, error) {
	if len(c) < 3 {
		return Row{}, fmt.Errorf("want Offset | Size | Field, got %d cells", len(c))
	}
	var r Row
	field := strings.Trim(c[2], "`")
	switch field {
	case "—", "-", "_", "":
		field = ""
	}
	r.Field = field
	if field != "(total)" || c[0] != "" {
		v, err := strconv.ParseUint(c[0], 10, 64)
		if err != nil {
			return r, fmt.Errorf("offset %q: %w", c[0], err)
		}
		r.Off = v
	}
	v, err := strconv.ParseUint(c[1], 10, 64)
	if err != nil {
		return r, fmt.Errorf("size %q: %w", c[1], err)
	}
	r.Size = v
	return r, nil
}

// Resolve returns the offset and size of the field at path inside t.
func Resolve(t reflect.Type, path string) (off, size uint64, err error) {
	cur := t
	for _, part := range strings.Split(path, ".") {
		name, idx, hasIdx := part, 0, false
		if i := strings.IndexByte(part, '['); i >= 0 && strings.HasSuffix(part, "]") {
			n, err := strconv.Atoi(part[i+1 : len(part)-1])
			if err != nil {
				return 0, 0, fmt.Errorf("%s: bad index in %q", path, part)
			}
			name, idx, hasIdx = part[:i], n, true
		}
		if cur.Kind() != reflect.Struct {
			return 0, 0, fmt.Errorf("%s: %s is not a struct", path, cur)
		}
		f, ok := fieldByName(cur, name)
		if !ok {
			return 0, 0, fmt.Errorf("%s: %s has no field %s", path, cur, name)
		}
		off += uint64(f.Offset)
		cur = f.Type
		if hasIdx {
			if cur.Kind() != reflect.Array || idx < 0 || idx >= cur.Len() {
				return 0, 0, fmt.Errorf("%s: %s is not an array with index %d", path, cur, idx)
			}
			off += uint64(idx) * uint64(cur.Elem().Size())
			cur = cur.Elem()
		}
	}
	return off, uint64(cur.Size()), nil
}

// fieldByName finds a direct field, or one promoted from an embedded
// struct (whose offset then includes the embedding field's).
func fieldByName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); f.Name == name {
			return f, true
		}
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			if g, ok := fieldByName(f.Type, name); ok {
				g.Offset += f.Offset
				return g, true
			}
		}
	}
	return reflect.StructField{}, false
}

// CheckTable compares table name of the doc with the Go type t.
func (d *Doc) CheckTable(name string, t reflect.Type) []error {
	tab := d.Tables[name]
	if tab == nil {
		return []error{fmt.Errorf("%s: no table %q (want <!-- table: %s --> before it)", d.Path, name, name)}
	}
	var errs []error
	bad := func(r Row, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: %s: %s", filepath.Base(d.Path), r.Line, name, fmt.Sprintf(format, args...)))
	}
	var end uint64
	sawTotal := false
	for _, r := range tab.Rows {
		switch {
		case r.Field == "(total)":
			sawTotal = true
			if r.Size != uint64(t.Size()) {
				bad(r, "total size %d, Go's %s has %d", r.Size, t, t.Size())
			}
			if end != r.Size {
				bad(r, "top-level rows end at %d, total says %d", end, r.Size)
			}
			continue
		case r.Field == "":
		default:
			off, size, err := Resolve(t, r.Field)
			if err != nil {
				bad(r, "%v", err)
				continue
			}
			if off != r.Off || size != r.Size {
				bad(r, "%s at offset %d size %d, Go has offset %d size %d", r.Field, r.Off, r.Size, off, size)
			}
		}
		if !strings.ContainsAny(r.Field, ".[") {
			if r.Off != end {
				bad(r, "row at offset %d, the previous top-level row ended at %d (gap or overlap)", r.Off, end)
			}
			end = r.Off + r.Size
		}
	}
	if !sawTotal {
		errs = append(errs, fmt.Errorf("%s:%d: %s: no (total) row", filepath.Base(d.Path), tab.Line, name))
	}
	// The other way round: every named top-level field of the Go type has a
	// row, so a field added in padding cannot go undocumented.
	documented := map[string]bool{}
	for _, r := range tab.Rows {
		documented[strings.SplitN(strings.SplitN(r.Field, ".", 2)[0], "[", 2)[0]] = true
	}
	if t.Kind() == reflect.Struct {
		for i := range t.NumField() {
			if f := t.Field(i); f.Name != "_" && !f.Anonymous && !documented[f.Name] {
				errs = append(errs, fmt.Errorf("%s:%d: %s: Go field %s (offset %d, size %d) has no row", filepath.Base(d.Path), tab.Line, name, f.Name, f.Offset, f.Type.Size()))
			}
		}
	}
	return errs
}

// CheckPackage checks every table of package pkg ("shmring") against the
// Go types given by table name ("shmring.control"), and fails for a table
// of pkg without a type or a type without a table.
func CheckPackage(t testing.TB, pkg string, types map[string]reflect.Type) {
	t.Helper()
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range d.Tables {
		if strings.HasPrefix(n, pkg+".") {
			names = append(names, n)
		}
	}
	for n := range types {
		if d.Tables[n] == nil {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		typ, ok := types[n]
		if !ok {
			t.Errorf("FORMAT.md table %s has no Go type checked against it", n)
			continue
		}
		for _, e := range d.CheckTable(n, typ) {
			t.Error(e)
		}
	}
}

// CheckConsts checks the constants table of pkg against want, both ways.
func CheckConsts(t testing.TB, pkg string, want map[string]uint64) {
	t.Helper()
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range d.Consts[pkg] {
		seen[c.Name] = true
		v, ok := want[c.Name]
		if !ok {
			t.Errorf("FORMAT.md:%d: constant %s of %s is not checked against Go", c.Line, c.Name, pkg)
			continue
		}
		if v != c.Value {
			t.Errorf("FORMAT.md:%d: constant %s is %#x, Go has %#x", c.Line, c.Name, c.Value, v)
		}
	}
	for n := range want {
		if !seen[n] {
			t.Errorf("FORMAT.md has no constant %s in its %s constants table", n, pkg)
		}
	}
}
