package fuzz_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
)

// structureOpener opens a fuzzed segment as one structure; it must fail
// with a sentinel or return something that survives a few operations.
type structureOpener struct {
	name string
	open func(t *testing.T, spec string)
}

// structureSeeder makes one real segment of a structure at spec.
type structureSeeder struct {
	name   string
	create func(t testing.TB, spec string) error
}

// structureOpeners and structureSeeders are filled by structures_test.go.
var (
	structureOpeners []structureOpener
	structureSeeders []structureSeeder
)

type namedSeed struct {
	name string
	img  []byte
}

// headerSeeds returns real segment images (made by CreateValue, Create and
// each structure's Create) and variations of them that exercise distinct
// Open paths: truncations, a dead creator still "initializing", an
// all-zero object, a wrong format version.
func headerSeeds(tb testing.TB) []namedSeed {
	dir := tb.TempDir()
	capture := func(name string, create func(spec string) error) namedSeed {
		path := filepath.Join(dir, name)
		if err := create("file:" + path); err != nil {
			tb.Fatalf("seed %s: %v", name, err)
		}
		img, err := os.ReadFile(path)
		if err != nil {
			tb.Fatal(err)
		}
		_ = os.Remove(path)
		return namedSeed{name, img}
	}
	real := []namedSeed{
		capture("value-uint64", func(spec string) error {
			v, err := layout.CreateValue[uint64](spec)
			if err == nil {
				err = v.Close()
			}
			return err
		}),
		capture("value-order", func(spec string) error {
			v, err := layout.CreateValue[seedOrder](spec)
			if err == nil {
				err = v.Close()
			}
			return err
		}),
		capture("desc-map-shaped", func(spec string) error {
			// A map-shaped segment: two types, several regions, params.
			d := layout.Desc{
				Kind:     layout.KindMap,
				Types:    []reflect.Type{reflect.TypeFor[[2]uint32](), reflect.TypeFor[seedPair]()},
				Capacity: 16,
				Flags:    3,
				Params:   [layout.MaxParams]uint64{0x5eed, 4},
				Regions:  []layout.Region{{Size: 256}, {Size: 16 * 32, Align: 8}, {Size: 8}},
			}
			s, err := layout.Create(spec, d, nil)
			if err == nil {
				err = s.Close()
			}
			return err
		}),
	}
	for _, seed := range structureSeeders {
		real = append(real, capture(seed.name, func(spec string) error { return seed.create(tb, spec) }))
	}

	seeds := append([]namedSeed(nil), real...)
	le := binary.LittleEndian
	for _, s := range real {
		img := s.img
		for _, cut := range []int{0, 1, 8, layout.HeaderSize / 2, layout.HeaderSize - 1, layout.HeaderSize, layout.HeaderSize + 40, len(img) - 1} {
			if cut >= 0 && cut < len(img) {
				seeds = append(seeds, namedSeed{fmt.Sprintf("%s-cut-%d", s.name, cut), append([]byte(nil), img[:cut]...)})
			}
		}
		dead := append([]byte(nil), img...)
		le.PutUint32(dead[offState:], layout.StateInitializing)
		le.PutUint32(dead[headerField("Creator"):], 0x7ffffff0) // no such pid
		seeds = append(seeds, namedSeed{s.name + "-dead-creator", dead})

		version := append([]byte(nil), img...)
		le.PutUint32(version[offVersion:], layout.FormatVersion+1)
		seeds = append(seeds, namedSeed{s.name + "-next-version", version})
	}
	seeds = append(seeds, namedSeed{"zero-page", make([]byte, layout.PageSize)})
	return seeds
}

// TestWriteHeaderSeeds refreshes the committed seed corpus of
// FuzzHeaderOpen from the current formats (SHMKIT_WRITE_SEEDS=1). The
// committed files keep the corpus meaningful for runs that predate a
// format change; FuzzHeaderOpen also adds fresh seeds itself every run.
func TestWriteHeaderSeeds(t *testing.T) {
	if os.Getenv("SHMKIT_WRITE_SEEDS") == "" {
		t.Skip("set SHMKIT_WRITE_SEEDS=1 to rewrite testdata/fuzz/FuzzHeaderOpen")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzHeaderOpen")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	written := map[string]bool{}
	for _, s := range headerSeeds(t) {
		if written[string(s.img)] {
			continue
		}
		written[string(s.img)] = true
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(s.img)))
		if err := os.WriteFile(filepath.Join(dir, "seed-"+s.name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// removeSpec removes a test segment, ignoring "already gone".
func removeSpec(spec string) { _ = segment.Remove(spec) }
