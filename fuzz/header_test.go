package fuzz_test

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/shmkit/shmkit/layout"
)

// Element types the fuzzed segments are opened as. seedOrder has padding,
// a nested array and an atomic, so its stored description is non-trivial.
type seedOrder struct {
	ID    uint64
	Qty   int32
	Side  uint8
	Legs  [3]uint16
	Count atomic.Int64
}

type seedPair struct {
	K [2]uint32
	V float64
}

// headerField returns the byte offset of a Header field, from reflect so
// that this file needs no unsafe.
func headerField(name string) int {
	f, ok := reflect.TypeFor[layout.Header]().FieldByName(name)
	if !ok {
		panic("layout.Header has no field " + name)
	}
	return int(f.Offset)
}

var (
	offVersion     = headerField("Version")
	offKind        = headerField("Kind")
	offNumTypes    = headerField("NumTypes")
	offNumRegions  = headerField("NumRegions")
	offSegmentSize = headerField("SegmentSize")
	offTypeDescOff = headerField("TypeDescOff")
	offTypeDescLen = headerField("TypeDescLen")
	offTypes       = headerField("Types")
	offRegions     = headerField("Regions")
	offChecksum    = headerField("Checksum")
	offState       = headerField("State")
	typeRecordSize = int(reflect.TypeFor[layout.TypeRecord]().Size())
)

// openSentinels are the errors a failed Open may wrap. Anything else (a
// bare string error, an error that lost its sentinel through .Error()) is
// a bug: callers must be able to tell why an open failed.
var openSentinels = []error{
	layout.ErrBadMagic, layout.ErrVersion, layout.ErrCorrupt, layout.ErrTooSmall,
	layout.ErrNotReady, layout.ErrTypeMismatch,
}

func wrapsSentinel(err error, extra ...error) bool {
	for _, s := range append(openSentinels, extra...) {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// fixChecksum makes a fuzzed image self-consistent where it can: every type
// fingerprint becomes the hash of the stored description, and the header
// checksum is recomputed. Without this the fuzzer could never get past the
// checksum, and everything behind it (region bounds, type descriptions,
// kind and type checks, structure validators) would go unfuzzed. It reports
// whether it changed anything.
func fixChecksum(img []byte) bool {
	if len(img) < layout.HeaderSize {
		return false
	}
	le := binary.LittleEndian
	descOff, descLen := le.Uint64(img[offTypeDescOff:]), le.Uint64(img[offTypeDescLen:])
	if descOff > uint64(len(img)) || descLen > uint64(len(img))-descOff {
		return false
	}
	desc := img[descOff : descOff+descLen]
	n := min(int(le.Uint32(img[offNumTypes:])), layout.MaxTypes)
	rest := desc
	for i := range n {
		if len(rest) < 8 {
			break
		}
		nl, ll := uint64(le.Uint32(rest)), uint64(le.Uint32(rest[4:]))
		rest = rest[8:]
		if nl > uint64(len(rest)) || ll > uint64(len(rest))-nl {
			break
		}
		le.PutUint64(img[offTypes+i*typeRecordSize:], xxhash.Sum64(rest[nl:nl+ll]))
		rest = rest[nl+ll:]
	}
	d := xxhash.New()
	_, _ = d.Write(img[:offChecksum])
	_, _ = d.Write(desc)
	before := le.Uint64(img[offChecksum:])
	le.PutUint64(img[offChecksum:], d.Sum64())
	return before != d.Sum64() || n > 0
}

// segFiles writes fuzzed images to files in a directory private to this
// fuzz worker (workers are separate processes, each runs the fuzz function
// and so gets its own directory). Every image gets a new file, removed at
// the end of its input: an Open abandoned by bounded() may still have the
// previous file mapped, and truncating that file would make its next
// access fault.
type segFiles struct {
	dir string
	n   atomic.Uint64
}

func (s *segFiles) write(t testing.TB, img []byte) (spec string) {
	path := filepath.Join(s.dir, strconv.FormatUint(s.n.Add(1), 10))
	if err := os.WriteFile(path, img, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(path) })
	return "file:" + path
}

// bounded runs fn and fails the test if it panics or takes longer than
// limit: Open on garbage must fail fast, not hang.
func bounded(t testing.TB, what string, limit time.Duration, fn func()) {
	t.Helper()
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		// A wild pointer into the mapping becomes a panic we can report.
		debug.SetPanicOnFault(true)
		fn()
	}()
	select {
	case p := <-done:
		if p != nil {
			t.Fatalf("%s panicked: %v", what, p)
		}
	case <-time.After(limit):
		buf := make([]byte, 1<<20)
		t.Fatalf("%s still running after %v\n%s", what, limit, buf[:runtime.Stack(buf, true)])
	}
}

// openTimeout makes Open try once instead of waiting for a "creator" that
// fuzzed bytes invented; bounded() still catches an Open that ignores it.
const openTimeout = time.Microsecond

// checkOpen opens spec every way this package knows and checks that each
// either fails with a sentinel or yields a segment whose every region lies
// inside the mapping.
func checkOpen(t *testing.T, spec string, size int) {
	t.Helper()
	headerOK := false
	bounded(t, "layout.Open(KindAny)", 10*time.Second, func() {
		s, err := layout.Open(spec, layout.Expect{Kind: layout.KindAny}, layout.WithInitTimeout(openTimeout))
		if err != nil {
			if !wrapsSentinel(err) {
				t.Errorf("Open(KindAny): error wraps no sentinel: %v", err)
			}
			return
		}
		defer s.Close()
		headerOK = true
		checkSegment(t, s, size)
	})
	if !headerOK {
		// Every typed open validates the same header first and fails the
		// same way; skipping them keeps the fuzzer fast.
		return
	}
	bounded(t, "layout.OpenValue", 10*time.Second, func() {
		openValue[uint64](t, spec, size)
		openValue[seedOrder](t, spec, size)
		openValue[seedPair](t, spec, size)
	})
	for _, o := range structureOpeners {
		bounded(t, o.name, 10*time.Second, func() { o.open(t, spec) })
	}
}

func openValue[T any](t *testing.T, spec string, size int) {
	v, err := layout.OpenValue[T](spec, layout.WithInitTimeout(openTimeout))
	if err != nil {
		if !wrapsSentinel(err) {
			t.Errorf("OpenValue[%s]: error wraps no sentinel: %v", reflect.TypeFor[T](), err)
		}
		return
	}
	defer v.Close()
	checkSegment(t, v.Segment(), size)
	h := v.Segment().Header()
	if h.Kind != layout.KindValue {
		t.Errorf("OpenValue[%s] accepted a %s segment", reflect.TypeFor[T](), h.Kind)
	}
	want, _ := layout.DescribeOf[T]()
	if got := v.Segment().Types(); len(got) != 1 || got[0].Fingerprint != want.Fingerprint || got[0].Layout != want.Layout {
		t.Errorf("OpenValue[%s] accepted types %v", reflect.TypeFor[T](), got)
	}
	_ = *v.Ptr() // must be readable: it lies inside the mapping
}

// checkSegment checks what a successful Open promises: a header that
// passes Validate, and regions inside the object where the header says.
func checkSegment(t *testing.T, s *layout.Segment, size int) {
	t.Helper()
	h := s.Header()
	if h.SegmentSize > uint64(size) {
		t.Errorf("opened a segment claiming %d bytes from a %d-byte object", h.SegmentSize, size)
	}
	if s.NumRegions() != int(h.NumRegions) || h.NumRegions > layout.MaxRegions {
		t.Errorf("%d regions, header says %d", s.NumRegions(), h.NumRegions)
	}
	if len(s.Types()) != int(h.NumTypes) {
		t.Errorf("%d types, header says %d", len(s.Types()), h.NumTypes)
	}
	for i := range s.NumRegions() {
		r := s.Region(i)
		rec := h.Regions[i]
		if uint64(len(r)) != rec.Size || rec.Off+rec.Size > h.SegmentSize || rec.Off%layout.LineSize != 0 {
			t.Errorf("region %d: %d bytes, record %+v, segment %d", i, len(r), rec, h.SegmentSize)
		}
		if len(r) > 0 {
			_ = r[0] + r[len(r)-1]
		}
	}
	if s.Region(s.NumRegions()) != nil || s.Region(-1) != nil {
		t.Errorf("Region out of range returned memory")
	}
}

func FuzzHeaderOpen(f *testing.F) {
	for _, seed := range headerSeeds(f) {
		f.Add(seed.img)
	}
	files := &segFiles{dir: fuzzWorkerDir(f)}
	f.Fuzz(func(t *testing.T, img []byte) {
		checkOpen(t, files.write(t, img), len(img))
		// The same image with checksums made consistent reaches the checks
		// that a checksum mismatch would otherwise stop short of.
		fixed := append([]byte(nil), img...)
		if fixChecksum(fixed) {
			checkOpen(t, files.write(t, fixed), len(fixed))
		}
	})
}
