package atomicx

import (
	"sync/atomic"
	"unsafe"
)

// StoreReleaseUint64 is StoreRelease64 on a sync/atomic Uint64 (whose only
// non-zero-size field is the value, at offset 0).
func StoreReleaseUint64(p *atomic.Uint64, v uint64) {
	StoreRelease64((*uint64)(unsafe.Pointer(p)), v)
}
