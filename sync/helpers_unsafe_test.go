package sync_test

import (
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/segment"
	shsync "github.com/shmkit/shmkit/sync"
)

// itemsTotal bounds the producer/consumer tests (bitmap size).
const itemsTotal = 1 << 14

// shared is the test segment's layout. Every primitive sits at a naturally
// aligned offset (asserted in TestSharedLayout).
type shared struct {
	Mu       shsync.Mutex
	Mu2      shsync.Mutex
	Sem      shsync.Semaphore
	LockSem  shsync.Semaphore
	Items    shsync.Semaphore
	Slots    shsync.Semaphore
	Note     shsync.Notifier
	Note2    shsync.Notifier
	Seq      shsync.SeqCount
	Flag     uint32
	Flag2    uint32
	Go       uint32
	Counter  int64
	Baseline futexMutex

	// Producer/consumer ring (guarded by a lock) and the checker's state.
	Head, Tail uint64
	Ring       [8]uint64
	Sum        uint64
	Consumed   uint64
	Dups       uint64
	Seen       [itemsTotal / 64]uint64

	// SeqCount test data: two words that must always be equal.
	A, B uint64

	// Published cursors of the lost-wake test (Notifier.Publish).
	Pub, Ack atomic.Uint64
}

// newShared creates a POSIX segment holding a zeroed shared struct and
// arranges its removal. It returns the spec for children and the struct.
func newShared(t testing.TB) (string, *shared) {
	t.Helper()
	spec := "posix:/" + testproc.UniqueName("sync")
	seg, err := segment.Create(spec, int(unsafe.Sizeof(shared{})))
	if err != nil {
		t.Fatalf("segment.Create: %v", err)
	}
	t.Cleanup(func() {
		// A test that failed while holding a lock must not leave a
		// dangling robust-list entry into the unmapped segment.
		shsync.ForgetRange(seg.Bytes())
		_ = seg.Close()
		_ = segment.Remove(spec)
	})
	return spec, (*shared)(unsafe.Pointer(unsafe.SliceData(seg.Bytes())))
}

// openShared maps an existing test segment in a child. The mapping lives
// until the child exits.
func openShared(spec string) (*shared, error) {
	seg, err := segment.Open(spec)
	if err != nil {
		return nil, err
	}
	if len(seg.Bytes()) < int(unsafe.Sizeof(shared{})) {
		return nil, errShort
	}
	return (*shared)(unsafe.Pointer(unsafe.SliceData(seg.Bytes()))), nil
}

func addrOf[T any](p *T) uintptr { return uintptr(unsafe.Pointer(p)) }

// unsafeBytes returns the bytes of the shared struct (for ForgetRange).
func unsafeBytes(s *shared) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(s)), unsafe.Sizeof(*s))
}

// wordOf returns the futex word of m (offset 8, asserted in TestLayout).
func wordOf(m *shsync.Mutex) *uint32 {
	return (*uint32)(unsafe.Add(unsafe.Pointer(m), 8))
}

func unsafePointer[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }

// newSegOf creates a POSIX segment holding one zero T (removed at cleanup).
func newSegOf[T any](t testing.TB) *T {
	t.Helper()
	spec := "posix:/" + testproc.UniqueName("sync")
	var zero T
	seg, err := segment.Create(spec, int(unsafe.Sizeof(zero)))
	if err != nil {
		t.Fatalf("segment.Create: %v", err)
	}
	t.Cleanup(func() {
		shsync.ForgetRange(seg.Bytes())
		_ = seg.Close()
		_ = segment.Remove(spec)
	})
	return (*T)(unsafe.Pointer(unsafe.SliceData(seg.Bytes())))
}
