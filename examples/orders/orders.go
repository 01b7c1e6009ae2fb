// Package orders is the record that examples/producer and examples/consumer
// exchange. Both binaries import it, which is how two programs agree on what
// a queue holds; the queue itself checks the agreement when a segment is
// opened (a consumer built with a different Order gets
// shmqueue.ErrTypeMismatch, naming both layouts).
package orders

import (
	"fmt"
	"strings"
)

// Order is one order, stored as is in the queue's slots: fixed-size fields
// only (no strings, slices or pointers: another process could not follow
// them), with the padding made explicit.
type Order struct {
	ID       uint64  // numbers a producer's orders 0, 1, 2, ...
	Producer uint32  // the producer's process id
	Qty      uint32  // shares
	Price    int64   // in ten-thousandths (1.2345 is 12345)
	Time     int64   // when the producer created it, Unix nanoseconds
	Symbol   [8]byte // ticker, NUL-padded
	Side     byte    // 'B' buy or 'S' sell
	_        [3]byte
	Sum      uint32 // Checksum of the fields above
}

var symbols = [...]string{"ACME", "GLOBEX", "INITECH", "HOOLI", "UMBRELLA", "STARK", "WAYNE", "TYRELL"}

// Make returns producer's order id, with fields derived from id so that a
// consumer can tell a damaged order from a good one.
func Make(producer uint32, id uint64, now int64) Order {
	o := Order{
		ID:       id,
		Producer: producer,
		Qty:      uint32(1 + id%500),
		Price:    int64(100_0000 + (id*7919)%50_0000),
		Time:     now,
		Side:     "BS"[id%2],
	}
	copy(o.Symbol[:], symbols[id%uint64(len(symbols))])
	o.Sum = o.Checksum()
	return o
}

// Checksum hashes every field but Sum (FNV-1a over the values).
func (o *Order) Checksum() uint32 {
	h := uint64(14695981039346656037)
	mix := func(v uint64) {
		for range 8 {
			h ^= v & 0xff
			h *= 1099511628211
			v >>= 8
		}
	}
	mix(o.ID)
	mix(uint64(o.Producer)<<32 | uint64(o.Qty))
	mix(uint64(o.Price))
	mix(uint64(o.Time))
	for _, b := range o.Symbol {
		mix(uint64(b))
	}
	mix(uint64(o.Side))
	return uint32(h ^ h>>32)
}

// Valid reports whether the checksum matches.
func (o *Order) Valid() bool { return o.Sum == o.Checksum() }

// SymbolString returns the ticker as a string.
func (o *Order) SymbolString() string { return strings.TrimRight(string(o.Symbol[:]), "\x00") }

func (o Order) String() string {
	return fmt.Sprintf("#%d from %d: %c %d %s @ %.4f", o.ID, o.Producer, o.Side, o.Qty,
		o.SymbolString(), float64(o.Price)/1e4)
}

// Segment is the default spec the examples meet on.
const Segment = "posix:/shmkit-orders"
