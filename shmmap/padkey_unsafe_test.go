package shmmap_test

import "unsafe"

// dirtyPadding fills the padding bytes of k (after A, after C) with
// garbage, as a struct copied through memory may carry.
func dirtyPadding(k *padKey, garbage byte) {
	b := unsafe.Slice((*byte)(unsafe.Pointer(k)), unsafe.Sizeof(*k))
	for i := unsafe.Offsetof(k.A) + 1; i < unsafe.Offsetof(k.B); i++ {
		b[i] = garbage
	}
	for i := unsafe.Offsetof(k.C) + 2; i < unsafe.Sizeof(*k); i++ {
		b[i] = garbage + 1
	}
}
