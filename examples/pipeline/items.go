package main

import "math/bits"

// Header starts every item. The items are plain structs: the rings copy
// nothing but these bytes, so everything the sink needs to check an item and
// measure its trip travels inside it.
type Header struct {
	// Seq numbers the items 0, 1, 2, ... in source order. In the end marker
	// it is the number of items the sender forwarded.
	Seq uint32
	// Sum is the checksum of Seq, Stamp and the payload as the previous stage
	// wrote them. In the end marker it is the xor of every Sum sent.
	Sum uint32
	// Stamp is the source's CLOCK_MONOTONIC reading in nanoseconds when it
	// wrote the item (system-wide on Linux, so the sink can subtract it from
	// its own reading). endMarker in the last item of the stream.
	Stamp int64
}

// endMarker in Header.Stamp ends the stream: the rings have no "closed"
// state, so the end travels in-band, after the last item, and carries the
// sender's count and xor so the receiver can check it got everything.
const endMarker = -1

// The four element sizes of -elem. Each is a distinct Go type, so a ring
// segment made for one cannot be opened as another (layout checks the type
// fingerprint).
type (
	Item16 struct{ H Header }
	Item64 struct {
		H Header
		P [6]uint64
	}
	Item256 struct {
		H Header
		P [30]uint64
	}
	Item1024 struct {
		H Header
		P [126]uint64
	}
)

func (it *Item16) parts() (*Header, []uint64)   { return &it.H, nil }
func (it *Item64) parts() (*Header, []uint64)   { return &it.H, it.P[:] }
func (it *Item256) parts() (*Header, []uint64)  { return &it.H, it.P[:] }
func (it *Item1024) parts() (*Header, []uint64) { return &it.H, it.P[:] }

// item is satisfied by a pointer to one of the item types. The stage code is
// generic over it, so the inner loops are compiled once per element size
// with no interface call per item.
type item[T any] interface {
	*T
	parts() (*Header, []uint64)
}

// payloadWord is what the source writes in word i of item seq.
func payloadWord(seq uint32, i int) uint64 {
	return (uint64(seq)+1)*0x9e3779b97f4a7c15 + uint64(i)*0xbf58476d1ce4e5b9
}

// stageKey is what transform stage k (1-based) xors into word i. The sink
// checks the payload against the source's words xored with every stage's
// key: each transform must have run exactly once on every item.
func stageKey(k, i int) uint64 {
	x := uint64(k)<<32 | uint64(i)
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// checksum mixes the header fields and payload into 32 bits. It is a plain
// multiply-xor hash: cheap enough to run on every item in every stage, strong
// enough to catch torn or misplaced items.
func checksum(h *Header, p []uint64) uint32 {
	x := uint64(h.Seq)*0xff51afd7ed558ccd ^ uint64(h.Stamp)
	for _, w := range p {
		x = (x ^ w) * 0xc4ceb9fe1a85ec53
		x ^= x >> 31
	}
	x ^= x >> 29
	x *= 0x94d049bb133111eb
	x ^= x >> 32
	return uint32(x)
}

// Latency histogram: log-linear buckets with 32 sub-buckets per power of
// two (about 3% resolution) over the whole uint64 range. Values below 32
// have a bucket each.
const (
	histSubBits = 5
	histBuckets = (64 - histSubBits + 1) << histSubBits
)

func histBucket(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1
	return (shift+1)<<histSubBits + int(v>>shift) - 1<<histSubBits
}

// histUpper returns the largest value that falls in bucket b.
func histUpper(b int) uint64 {
	if b < 1<<histSubBits {
		return uint64(b)
	}
	shift := b>>histSubBits - 1
	top := uint64(b&(1<<histSubBits-1)) + 1<<histSubBits
	return (top+1)<<shift - 1
}

// histQuantile returns the upper bound of the bucket holding quantile q
// (0 < q <= 1) of the counts in h, or 0 if h is empty.
func histQuantile(h []uint64, q float64) uint64 {
	var total uint64
	for _, c := range h {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for b, c := range h {
		seen += c
		if seen >= rank {
			return histUpper(b)
		}
	}
	return histUpper(len(h) - 1)
}
