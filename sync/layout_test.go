package sync_test

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/shmkit/shmkit/internal/testproc"
	shsync "github.com/shmkit/shmkit/sync"
)

var errShort = errors.New("segment shorter than the test layout")

func TestMain(m *testing.M) {
	// A -race binary sleeps 1 s at exit (GORACE atexit_sleep_ms) to catch
	// late races; children inherit this setting and exit 1 s faster.
	if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
		os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0"))
	}
	if os.Getenv(envSharedList) == "1" {
		shsync.SetSharedListOnly(true)
	}
	testproc.Main(m)
}

// checkAtomicFields asserts that every field of a struct type is a sized
// integer, naturally aligned, and that the whole is pointer-free.
func checkAtomicFields(t *testing.T, typ reflect.Type, wantSize, wantAlign uintptr) {
	t.Helper()
	if typ.Size() != wantSize || uintptr(typ.Align()) != wantAlign {
		t.Errorf("%v: size %d align %d, want %d/%d", typ, typ.Size(), typ.Align(), wantSize, wantAlign)
	}
	for i := range typ.NumField() {
		f := typ.Field(i)
		switch f.Type.Kind() {
		case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		default:
			t.Errorf("%v.%s: kind %v is not a sized integer", typ, f.Name, f.Type.Kind())
		}
		if f.Offset%f.Type.Size() != 0 {
			t.Errorf("%v.%s: offset %d not aligned to its size %d", typ, f.Name, f.Offset, f.Type.Size())
		}
	}
}

func TestLayout(t *testing.T) {
	checkAtomicFields(t, reflect.TypeOf(shsync.Mutex{}), 32, 8)
	checkAtomicFields(t, reflect.TypeOf(shsync.Semaphore{}), 8, 4)
	checkAtomicFields(t, reflect.TypeOf(shsync.Notifier{}), 8, 4)
	checkAtomicFields(t, reflect.TypeOf(shsync.SeqCount{}), 8, 8)
	if unsafe.Sizeof(shsync.Mutex{})%8 != 0 {
		t.Errorf("Mutex size %d not a multiple of 8", unsafe.Sizeof(shsync.Mutex{}))
	}
	// The robust-list entry is the Mutex's first field and the futex word
	// follows it: the keeper registers futex_offset 8 with the kernel.
	mt := reflect.TypeOf(shsync.Mutex{})
	for _, c := range []struct {
		name string
		off  uintptr
	}{{"next", 0}, {"word", 8}, {"state", 12}, {"ownerTID", 16}, {"ownerPID", 20}, {"ownerStart", 24}} {
		f, ok := mt.FieldByName(c.name)
		if !ok || f.Offset != c.off {
			t.Errorf("Mutex.%s at %d (found %v), want %d", c.name, f.Offset, ok, c.off)
		}
	}
	for _, c := range []struct {
		typ  reflect.Type
		name string
		off  uintptr
	}{
		{reflect.TypeOf(shsync.Semaphore{}), "value", 0},
		{reflect.TypeOf(shsync.Semaphore{}), "waiters", 4},
		{reflect.TypeOf(shsync.Notifier{}), "word", 0},
		{reflect.TypeOf(shsync.SeqCount{}), "seq", 0},
	} {
		f, ok := c.typ.FieldByName(c.name)
		if !ok || f.Offset != c.off {
			t.Errorf("%v.%s at %d (found %v), want %d", c.typ, c.name, f.Offset, ok, c.off)
		}
	}
}

func TestSharedLayout(t *testing.T) {
	var s shared
	base := addrOf(&s)
	for name, c := range map[string]struct{ off, align uintptr }{
		"Mu":      {addrOf(&s.Mu) - base, 8},
		"Mu2":     {addrOf(&s.Mu2) - base, 8},
		"Sem":     {addrOf(&s.Sem) - base, 4},
		"Note":    {addrOf(&s.Note) - base, 4},
		"Seq":     {addrOf(&s.Seq) - base, 8},
		"Counter": {addrOf(&s.Counter) - base, 8},
		"Seen":    {addrOf(&s.Seen) - base, 8},
	} {
		if c.off%c.align != 0 {
			t.Errorf("shared.%s at %d not %d-aligned", name, c.off, c.align)
		}
	}
}
