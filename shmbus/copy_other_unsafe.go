//go:build !amd64

package shmbus

import (
	"sync/atomic"
	"unsafe"
)

// On weakly ordered CPUs (arm64) a plain load may be satisfied after the
// reader's second load of the sequence word, and a plain store may become
// visible before the writer's invalidating store. So here the value is
// moved as 64-bit atomic words: the slot's value starts 8-aligned at
// offset 8 and oslot's size is a multiple of 8, so the words cover it
// exactly. The invalidation is an atomic read-modify-write (a full
// barrier), as in sync.SeqCount.

func slotWords[T any](s *oslot[T]) []uint64 {
	n := (unsafe.Sizeof(*s) - unsafe.Offsetof(s.v)) / 8
	return unsafe.Slice((*uint64)(unsafe.Pointer(&s.v)), n)
}

func storeSlot[T any](s *oslot[T], seq uint64, v *T) {
	var tmp oslot[T]
	tmp.v = *v
	s.seq.Swap(0)
	dst, src := slotWords(s), slotWords(&tmp)
	for i := range dst {
		atomic.StoreUint64(&dst[i], src[i])
	}
	s.seq.Store(seq)
}

func loadSlot[T any](s *oslot[T], v *T) {
	var tmp oslot[T]
	dst, src := slotWords(&tmp), slotWords(s)
	for i := range dst {
		dst[i] = atomic.LoadUint64(&src[i])
	}
	*v = tmp.v
}
