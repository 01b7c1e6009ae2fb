package shmqueue

import (
	"reflect"
	"sync/atomic"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/sync"
)

// The futex backend's segment: region 0 is a futexControl, region 1 the
// slot array (capacity slot[T]), region 2 the member records.

// futexControl is region 0 of a futex queue. Every hot word is alone on a
// 128-byte line (x86 prefetches lines in pairs). Offsets are asserted in
// layout_unsafe_test.go.
type futexControl struct {
	// enq is the enqueue cursor: the next position a producer claims, with
	// closedBit set by CloseWrites.
	enq atomic.Uint64
	_   [layout.LineSize - 8]byte
	// deq is the dequeue cursor: the next position a consumer claims.
	deq atomic.Uint64
	_   [layout.LineSize - 8]byte
	// items is where consumers (and WaitSets) park when the queue is empty
	// or the slot at deq is still being written; producers notify it after
	// publishing. Nobody writes it while nobody parks, so a producer's check
	// is a load that hits in its cache.
	items sync.Notifier
	_     [layout.LineSize - 8]byte
	// slots is where producers park when the queue is full; consumers
	// notify it after releasing.
	slots sync.Notifier
	_     [layout.LineSize - 8]byte

	// Cold counters.
	holes     atomic.Uint64 // positions skipped because their producer died
	reclaimed atomic.Uint64 // slots released on behalf of dead consumers
	_         [layout.LineSize - 16]byte
}

// futexControlSize is the size of a futex queue's control region.
var futexControlSize = uint64(reflect.TypeFor[futexControl]().Size())

// slot holds one position's sequence word (futex backend; unused by SysV)
// and value. Both backends use the same slot array.
type slot[T any] struct {
	seq atomic.Uint64
	val T
}

func slotSize[T any]() uint64 { return uint64(reflect.TypeFor[slot[T]]().Size()) }

// lanesPerMember fills a member record to one 128-byte line.
const lanesPerMember = 15

// member is one attached handle's record in region 2: who owns it, and
// the claims its goroutines have in flight.
type member struct {
	// owner is the proc.ID.Word of the attached process, 0 if free.
	owner atomic.Uint64
	// lanes announce in-flight claims; see laneWord.
	lanes [lanesPerMember]atomic.Uint64
}

var memberSize = uint64(reflect.TypeFor[member]().Size())

const (
	// closedBit in the enqueue cursor: set by CloseWrites, it makes every
	// later claim CAS fail, so no push can slip in after consumers saw the
	// queue closed and drained.
	closedBit = uint64(1) << 63
	// holeBit in a slot's seq marks position seq-1 as skipped.
	holeBit = uint64(1) << 63
	// posLimit bounds cursors (56 bits) so a lane word can hold a position.
	posLimit = uint64(1) << 56
	// maxClaim is the most positions one claim covers.
	maxClaim = 64

	laneActive     = uint64(1) << 63
	lanePop        = uint64(1) << 62
	laneCountShift = 56
	lanePosMask    = posLimit - 1
)

// laneWord encodes an announced claim of positions [pos, pos+n), 1 <= n <= 64.
func laneWord(pop bool, pos uint64, n int) uint64 {
	w := laneActive | uint64(n-1)<<laneCountShift | pos&lanePosMask
	if pop {
		w |= lanePop
	}
	return w
}

// laneCovers reports whether lane word w announces a claim of the given
// kind covering position p.
func laneCovers(w uint64, pop bool, p uint64) bool {
	if w&laneActive == 0 || (w&lanePop != 0) != pop {
		return false
	}
	start := w & lanePosMask
	n := (w>>laneCountShift)&(maxClaim-1) + 1
	return p >= start && p-start < n
}
