// Package mem turns bytes of a shared mapping into typed Go views.
//
// It is the one place where shmkit converts between []byte and *T / []T.
// Every conversion checks length and alignment first and reports a problem
// as an error instead of faulting: the bytes come from shared memory, and
// their offsets may have been computed from values a peer wrote.
package mem

import (
	"errors"
	"fmt"
	"unsafe"
)

// ErrView reports that a typed view does not fit the bytes it was asked of.
var ErrView = errors.New("mem: view out of bounds or misaligned")

// Ptr returns b[0:sizeof(T)] viewed as *T. b must be long enough and
// suitably aligned for T.
func Ptr[T any](b []byte) (*T, error) {
	var zero T
	size, align := unsafe.Sizeof(zero), unsafe.Alignof(zero)
	if uintptr(len(b)) < size {
		return nil, fmt.Errorf("%w: %d bytes for a %d-byte %T", ErrView, len(b), size, zero)
	}
	if size == 0 {
		return &zero, nil
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	if uintptr(p)%align != 0 {
		return nil, fmt.Errorf("%w: address %#x not %d-aligned for %T", ErrView, uintptr(p), align, zero)
	}
	return (*T)(p), nil
}

// Slice returns b viewed as n consecutive T. b must hold n*sizeof(T) bytes
// and be aligned for T.
func Slice[T any](b []byte, n int) ([]T, error) {
	var zero T
	size, align := unsafe.Sizeof(zero), unsafe.Alignof(zero)
	if n < 0 || size == 0 {
		return nil, fmt.Errorf("%w: %d elements of %d-byte %T", ErrView, n, size, zero)
	}
	if uint64(n) > uint64(len(b))/uint64(size) {
		return nil, fmt.Errorf("%w: %d bytes for %d elements of %d-byte %T", ErrView, len(b), n, size, zero)
	}
	if n == 0 {
		return []T{}, nil
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	if uintptr(p)%align != 0 {
		return nil, fmt.Errorf("%w: address %#x not %d-aligned for %T", ErrView, uintptr(p), align, zero)
	}
	return unsafe.Slice((*T)(p), n), nil
}

// Bytes returns the memory of *p as a byte slice (for hashing or copying
// the raw image of a value). The slice aliases *p.
func Bytes[T any](p *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), unsafe.Sizeof(*p))
}

// Addr returns the address of the first byte of b, for alignment checks and
// for keying per-address process-local state.
func Addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
