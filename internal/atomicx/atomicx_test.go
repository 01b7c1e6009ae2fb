package atomicx

import (
	"sync/atomic"
	"testing"
	"unsafe"
)

func TestOrderedAccess(t *testing.T) {
	var u uint64
	StoreRelease64(&u, 7)
	if LoadAcquire64(&u) != 7 {
		t.Fatal("StoreRelease64/LoadAcquire64")
	}
	var w uint32 = 9
	if LoadAcquire32(&w) != 9 {
		t.Fatal("LoadAcquire32")
	}
	var a atomic.Uint64
	StoreReleaseUint64(&a, 1<<40+3)
	if a.Load() != 1<<40+3 {
		t.Fatal("StoreReleaseUint64")
	}
	// StoreReleaseUint64 relies on the value being the struct's only sized
	// field, at offset 0.
	if unsafe.Sizeof(a) != 8 {
		t.Fatalf("atomic.Uint64 is %d bytes", unsafe.Sizeof(a))
	}
}
