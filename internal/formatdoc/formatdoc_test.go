package formatdoc

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestDocTables checks that FORMAT.md parses and that every table belongs
// to a package whose format_test.go checks it.
func TestDocTables(t *testing.T) {
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	checked := map[string]bool{"layout": true, "shmring": true, "shmqueue": true, "shmmap": true, "shmbus": true, "sync": true}
	if len(d.Tables) < 15 {
		t.Errorf("only %d tables parsed", len(d.Tables))
	}
	for n := range d.Tables {
		pkg, _, _ := strings.Cut(n, ".")
		if !checked[pkg] {
			t.Errorf("table %s: package %s has no format_test.go checking it", n, pkg)
		}
	}
	for pkg := range d.Consts {
		if !checked[pkg] {
			t.Errorf("constants of %s are not checked", pkg)
		}
	}
}

// TestCheckTableCatchesDrift makes sure a wrong offset, a gap and a wrong
// total are all reported.
func TestCheckTableCatchesDrift(t *testing.T) {
	type T struct {
		A uint32
		_ uint32
		B struct{ X, Y uint64 }
	}
	doc := `
<!-- table: x.T -->
| Offset | Size | Field |
|---:|---:|---|
| 0 | 4 | ` + "`A`" + ` |
| 4 | 4 | — |
| 8 | 16 | B |
| 16 | 8 | B.Y |
|  | 24 | (total) |

<!-- table: x.Bad -->
| Offset | Size | Field |
|---:|---:|---|
| 0 | 4 | A |
| 8 | 16 | B |
| 16 | 8 | B.X |
|  | 32 | (total) |
`
	p := filepath.Join(t.TempDir(), "F.md")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := ParseFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if errs := d.CheckTable("x.T", reflect.TypeFor[T]()); len(errs) != 0 {
		t.Errorf("good table: %v", errs)
	}
	errs := d.CheckTable("x.Bad", reflect.TypeFor[T]())
	if len(errs) != 4 { // gap at 4, B.X offset, total size, tiling end
		t.Errorf("bad table: want 4 errors, got %d: %v", len(errs), errs)
	}
}
