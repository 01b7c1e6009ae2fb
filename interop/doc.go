// Package interop holds the tests that run shmkit's C library
// (include/shmkit.h) against Go: the C programs in examples/c are compiled
// with gcc into a temporary directory and run as real processes beside Go
// producers, consumers and publishers in the test process. The tests skip
// (saying why) only when gcc is not installed.
//
// Item is the element type both sides use; examples/c/item.h describes the
// same struct to the C library.
package interop

// Item is the element the interop tests move between Go and C.
type Item struct {
	Seq      uint64
	Producer uint32
	Check    uint32
}

// CheckOf is Item's self-check word for sequence number seq (item_check in
// examples/c/item.h).
func CheckOf(seq uint64) uint32 {
	return uint32((seq*0x9E3779B97F4A7C15)>>32) ^ 0x5eed
}

// MakeItem returns the item with sequence number seq.
func MakeItem(seq uint64, producer uint32) Item {
	return Item{Seq: seq, Producer: producer, Check: CheckOf(seq)}
}
