package shmmap

import (
	"encoding/binary"
	"math/bits"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// hasher computes the map's key hash:
//
//	xxhash64( LE64(seed) || the key's non-padding bytes in address order )
//
// The seed comes from the segment header, so every process computes the
// same hash for the same key; the spans come from a reflect walk of K done
// once per Map handle, so padding bytes (which may hold garbage) never enter
// the hash. Feeding the seed as a prefix rather than xxhash's own seed
// parameter lets the common case use xxhash.Sum64 (assembly, one shot) on a
// stack buffer; the streaming path for large keys produces the same value.
type hasher struct {
	seed     uint64
	size     uintptr // sizeof(K)
	dense    bool    // K has no padding: hash its bytes as they are
	spans    []span
	gathered uintptr // bytes covered by spans
	// short: a dense key of 8 bytes, hashed by the inline xxh64 below
	// from state, the xxh64 state after consuming the seed lane.
	short bool
	state uint64
}

func newHasher(seed uint64, size uintptr, spans []span) hasher {
	h := hasher{seed: seed, size: size, dense: dense(spans, size), spans: spans, gathered: spanBytes(spans)}
	if h.dense && size == 8 {
		h.short = true
		acc := prime5 + 16 // xxh64 of a 16-byte input, seed 0
		acc ^= xxhRound(0, seed)
		h.state = bits.RotateLeft64(acc, 27)*prime1 + prime4
	}
	return h
}

// xxh64 constants and round, exactly as in github.com/cespare/xxhash/v2
// (TestShortHashMatchesXXHash checks the two agree).
const (
	prime1 uint64 = 11400714785074694791
	prime2 uint64 = 14029467366897019727
	prime3 uint64 = 1609587929392839161
	prime4 uint64 = 9650029242287828579
	prime5 uint64 = 2870177450012600261
)

func xxhRound(acc, input uint64) uint64 {
	acc += input * prime2
	acc = bits.RotateLeft64(acc, 31)
	return acc * prime1
}

// hash8 finishes xxhash64(LE64(seed) || LE64(k)) from the precomputed
// state: Sum64 of a 16-byte buffer, without building the buffer or calling
// out. It is the hot path of every 8-byte key.
func (h *hasher) hash8(k uint64) uint64 {
	acc := h.state ^ xxhRound(0, k)
	acc = bits.RotateLeft64(acc, 27)*prime1 + prime4
	acc ^= acc >> 33
	acc *= prime2
	acc ^= acc >> 29
	acc *= prime3
	acc ^= acc >> 32
	return acc
}

// hash returns the hash of the key at p (a *K in Go memory).
func (h *hasher) hash(p unsafe.Pointer) uint64 {
	if h.short {
		return h.hash8(*(*uint64)(p))
	}
	if h.dense && h.size <= 56 {
		var buf [64]byte
		binary.LittleEndian.PutUint64(buf[:8], h.seed)
		copy(buf[8:], unsafe.Slice((*byte)(p), h.size))
		return xxhash.Sum64(buf[:8+h.size])
	}
	if h.gathered <= 248 {
		var buf [256]byte
		binary.LittleEndian.PutUint64(buf[:8], h.seed)
		n := uintptr(8)
		for _, s := range h.spans {
			n += uintptr(copy(buf[n:], unsafe.Slice((*byte)(unsafe.Add(p, s.off)), s.len)))
		}
		return xxhash.Sum64(buf[:n])
	}
	var d xxhash.Digest
	d.Reset()
	var seed [8]byte
	binary.LittleEndian.PutUint64(seed[:], h.seed)
	_, _ = d.Write(seed[:])
	for _, s := range h.spans {
		_, _ = d.Write(unsafe.Slice((*byte)(unsafe.Add(p, s.off)), s.len))
	}
	return d.Sum64()
}

// keyWord reads a key known to be 8 bytes (hasher.short) as a word.
func keyWord[K any](k *K) uint64 { return *(*uint64)(unsafe.Pointer(k)) }

// hashKey hashes *k.
func hashKey[K any](h *hasher, k *K) uint64 { return h.hash(unsafe.Pointer(k)) }

// equalSpans compares the non-padding bytes of *a and *b: bitwise equality
// (so float fields compare by their bits: NaN equals an identical NaN, -0
// differs from +0), which is what CompareAndSwap promises.
func equalSpans[V any](spans []span, a, b *V) bool {
	pa, pb := unsafe.Pointer(a), unsafe.Pointer(b)
	for _, s := range spans {
		x := unsafe.Slice((*byte)(unsafe.Add(pa, s.off)), s.len)
		y := unsafe.Slice((*byte)(unsafe.Add(pb, s.off)), s.len)
		if string(x) != string(y) {
			return false
		}
	}
	return true
}

// tagOf returns k's tag (hash | 1) and shard. The 8-byte case is inlined
// here: it is every lookup's first step.
func (m *Map[K, V]) tagOf(k *K) (tag, shard uint64) {
	if m.h.short {
		tag = m.h.hash8(*(*uint64)(unsafe.Pointer(k))) | 1
	} else {
		tag = m.h.hash(unsafe.Pointer(k)) | 1
	}
	return tag, tag >> m.shardShift
}
