package shmbus

import (
	"bytes"
	"fmt"
	"reflect"
	"sync/atomic"

	"github.com/shmkit/shmkit/layout"
	shmsync "github.com/shmkit/shmkit/sync"
)

// control is the shared control block, region 0 of every bus segment. Each
// hot word sits alone on a 128-byte line; offsets are asserted in
// layout_unsafe_test.go.
type control struct {
	// tail counts messages ever published; only the publisher stores it.
	tail atomic.Uint64
	_    [layout.LineSize - 8]byte
	// notEmpty is where subscribers (and WaitSets) park; Publish notifies.
	notEmpty shmsync.Notifier
	_        [layout.LineSize - 8]byte
	// notFull is where a Block publisher parks; notFullAt is the cursor
	// the slowest subscriber must reach for it to have room, so only the
	// advance that crosses it wakes the publisher.
	notFull   shmsync.Notifier
	notFullAt atomic.Uint64
	_         [layout.LineSize - 16]byte
	// gen is bumped by every subscriber that joins (or rejoins): a Block
	// publisher re-reads the table when it changes. closed is set by
	// CloseWrites. Both are written rarely and read by the publisher on
	// every publish (gen) or by subscribers that find the bus empty.
	gen    atomic.Uint64
	closed atomic.Uint32
	_      uint32
	_      [layout.LineSize - 16]byte
	// publisher is the publisher role word (a proc.Word, 0 when free);
	// lock serializes changes of the subscriber table (a proc.Word too);
	// tableFree is where a Subscribe waiting for lock parks.
	publisher atomic.Uint64
	lock      atomic.Uint64
	tableFree shmsync.Notifier
	_         [layout.LineSize - 24]byte
}

var controlSize = uint64(reflect.TypeFor[control]().Size())

// Subscriber record states.
const (
	stateFree    uint32 = 0
	stateAnon    uint32 = 1
	stateDurable uint32 = 2
)

// MaxNameLen bounds a durable subscriber's name.
const MaxNameLen = 64

// record is one subscriber's entry in the table (region 1). Its cursor is
// alone on a line: only its subscriber writes it, once per message.
type record struct {
	// cursor is the next message this subscriber reads.
	cursor atomic.Uint64
	_      [layout.LineSize - 8]byte
	// owner is the subscriber's proc.Word, 0 when none.
	owner   atomic.Uint64
	state   atomic.Uint32
	nameLen atomic.Uint32
	// lapped counts the times the subscriber was found lapped (or skipped
	// while dead); missed the messages it lost that way.
	lapped atomic.Uint64
	missed atomic.Uint64
	name   [MaxNameLen]byte
	_      [layout.LineSize - 32 - MaxNameLen]byte
}

var recordSize = uint64(reflect.TypeFor[record]().Size())

// readName returns the record's name, bounded.
func (r *record) readName() string {
	n := r.nameLen.Load()
	if n > MaxNameLen {
		n = MaxNameLen
	}
	return string(r.name[:n])
}

func (r *record) nameIs(name string) bool {
	n := r.nameLen.Load()
	return int(n) == len(name) && n <= MaxNameLen && bytes.Equal(r.name[:n], []byte(name))
}

// Header parameter words.
const (
	paramElemSize = 0
	paramMaxSubs  = 1
	paramOverflow = 2
)

// Region indexes.
const (
	regionControl = 0
	regionRecords = 1
	regionSlots   = 2
)

// maxCapacity bounds the slot count (cursor differences stay far from
// wrapping).
const maxCapacity = 1 << 40

// maxDataBytes bounds the slot region (layout's region limit).
const maxDataBytes = 1 << 46

// geometry is what a bus segment's header says, validated.
type geometry struct {
	name     string
	cap      uint64
	maxSubs  int
	overflow Overflow
	elemSize uint64
}

func checkGeometry(s *layout.Segment) (geometry, error) {
	h := s.Header()
	g := geometry{name: s.Raw().Spec().String()}
	if h.Kind != layout.KindBus {
		return g, fmt.Errorf("%w: segment holds a %s, not a bus", ErrTypeMismatch, h.Kind)
	}
	n := h.Capacity
	if n == 0 || n&(n-1) != 0 || n > maxCapacity {
		return g, fmt.Errorf("%w: capacity %d (must be a power of two in [1, %d])", ErrCorrupt, n, uint64(maxCapacity))
	}
	g.cap = n
	m := h.Params[paramMaxSubs]
	if m == 0 || m > MaxSubscribers {
		return g, fmt.Errorf("%w: %d subscriber records (must be in [1, %d])", ErrCorrupt, m, MaxSubscribers)
	}
	g.maxSubs = int(m)
	switch o := Overflow(h.Params[paramOverflow]); {
	case h.Params[paramOverflow] > 0xff:
		return g, fmt.Errorf("%w: overflow policy %d", ErrCorrupt, h.Params[paramOverflow])
	case o == Block || o == Overwrite:
		g.overflow = o
	default:
		return g, fmt.Errorf("%w: overflow policy %d", ErrCorrupt, h.Params[paramOverflow])
	}
	g.elemSize = h.Params[paramElemSize]
	if s.NumRegions() != 3 {
		return g, fmt.Errorf("%w: %d regions, want 3", ErrCorrupt, s.NumRegions())
	}
	if uint64(len(s.Region(regionRecords))) != uint64(g.maxSubs)*recordSize {
		return g, fmt.Errorf("%w: subscriber table of %d bytes for %d records", ErrCorrupt, len(s.Region(regionRecords)), g.maxSubs)
	}
	return g, nil
}

func viewControl(s *layout.Segment, g geometry) (*control, []record, error) {
	ctl, err := layout.View[control](s, regionControl)
	if err != nil {
		return nil, nil, fmt.Errorf("control block: %w", err)
	}
	recs, err := layout.ViewSlice[record](s, regionRecords, g.maxSubs)
	if err != nil {
		return nil, nil, fmt.Errorf("subscriber table: %w", err)
	}
	return ctl, recs, nil
}
