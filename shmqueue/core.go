package shmqueue

import (
	"reflect"
	"sync/atomic"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/sync"
)

// control is region 0. Every hot word is alone on a 128-byte line (x86
// prefetches lines in pairs). Offsets are asserted in layout_unsafe_test.go.
type control struct {
	// enq is the enqueue cursor: the next position a producer claims, with
	// closedBit set by CloseWrites (futex backend).
	enq atomic.Uint64
	_   [layout.LineSize - 8]byte
	// deq is the dequeue cursor: the next position a consumer claims.
	deq atomic.Uint64
	_   [layout.LineSize - 8]byte
	// items is where consumers park when the queue is empty (or the slot at
	// deq is still being written); producers notify it after publishing.
	// itemsParked counts the consumers parked there by live handles (see
	// member.parked: unlike the notifier's own count, a dead waiter's
	// share is taken back when its record is reclaimed).
	items       sync.Notifier
	itemsParked atomic.Uint64
	_           [layout.LineSize - 16]byte
	// slots is where producers park when the queue is full; consumers
	// notify it after releasing. slotsParked as itemsParked.
	slots       sync.Notifier
	slotsParked atomic.Uint64
	_           [layout.LineSize - 16]byte

	// Cold counters.
	holes     atomic.Uint64 // positions skipped because their producer died
	reclaimed atomic.Uint64 // slots released on behalf of dead consumers
	repairs   atomic.Uint64 // SysV: dead lock holders repaired
	_         [layout.LineSize - 24]byte

	// SysV backend state, written only under the semaphore lock (read
	// without it by Len and Stats).
	head   atomic.Uint64 // next position to pop
	tail   atomic.Uint64 // next position to push; the push commit point
	closed atomic.Uint32 // CloseWrites happened
	_      [layout.LineSize - 20]byte
}

// controlSize is the size of the control region.
var controlSize = uint64(reflect.TypeFor[control]().Size())

// slot holds one position's sequence word and value.
type slot[T any] struct {
	seq atomic.Uint64
	val T
}

func slotSize[T any]() uint64 { return uint64(reflect.TypeFor[slot[T]]().Size()) }

// lanesPerMember fills a member record to one 128-byte line.
const lanesPerMember = 13

// member is one attached handle's record in region 2: who owns it, and
// the claims its goroutines have in flight.
type member struct {
	// owner is ownerWord(pid, start) of the attached process, 0 if free.
	owner atomic.Uint64
	// parked counts this handle's goroutines parked on the items ([0]) and
	// slots ([1]) notifiers, also counted in control.itemsParked and
	// slotsParked, from which they are subtracted if the process dies.
	parked [2]atomic.Uint64
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

// Owner words pack a pid (< 2^22, the kernel's PID_MAX_LIMIT) and the low
// 42 bits of the process start time in clock ticks (centuries of uptime).
const ownerStartBits = 42

func ownerWord(pid int32, start uint64) uint64 {
	return uint64(uint32(pid))<<ownerStartBits | start&(1<<ownerStartBits-1)
}

func ownerPID(w uint64) int32 { return int32(w >> ownerStartBits) }

func ownerStart(w uint64) uint64 { return w & (1<<ownerStartBits - 1) }
