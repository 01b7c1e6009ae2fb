package shmring

import (
	"fmt"

	"github.com/shmkit/shmkit/internal/owner"
	"github.com/shmkit/shmkit/layout"
)

// ---- stats ----

// RingStats is a snapshot of a ring's shared state, for tools and
// monitoring. Head and Tail are loaded at slightly different moments; Len
// is clamped to [0, Cap].
type RingStats struct {
	Kind            layout.Kind
	Cap             uint64 // slots (Ring) or bytes (ByteRing)
	Len             uint64 // items or bytes published and not yet released
	Head, Tail      uint64 // lifetime counters
	Producer        RoleHolder
	Consumer        RoleHolder
	ProducerWaiting bool // the producer may be parked on "not full"
	ConsumerWaiting bool // a consumer (or WaitSet) may be parked on "not empty"
	WritesClosed    bool // CloseWrites was called: no more items will come
}

// stats reads the shared state. The error is ErrClosed for a closed handle,
// or an ErrCorrupt naming the cursors when head and tail are inconsistent
// (the rest of the snapshot is filled in all the same).
func (c *core) stats(kind layout.Kind) (s RingStats, err error) {
	s = RingStats{Kind: kind, Cap: c.cap}
	if c.closed.Load() {
		return s, layout.WrapOp("shmring", "stats", c.name, ErrClosed)
	}
	if err := c.faultErr(); err != nil {
		return s, err
	}
	defer c.fg.Guard(&err, "stats", c.fg.Enable())
	var corrupt error
	s.Head = c.ctl.head.Load()
	s.Tail = c.ctl.tail.Load()
	if d := s.Tail - s.Head; d <= c.cap {
		s.Len = d
	} else if int64(d) < 0 {
		corrupt = c.corrupt(s.Head, s.Tail)
	} else {
		// Possibly the tail moved on between our two loads; re-read.
		s.Head = c.ctl.head.Load()
		if d := s.Tail - s.Head; d <= c.cap {
			s.Len = d
		} else {
			s.Len = c.cap
			corrupt = c.corrupt(s.Head, s.Tail)
		}
	}
	s.Producer = owner.Decode(c.ctl.producer.Load())
	s.Consumer = owner.Decode(c.ctl.consumer.Load())
	s.ProducerWaiting = c.ctl.notFull.Waiting()
	s.ConsumerWaiting = c.ctl.notEmpty.Waiting()
	s.WritesClosed = c.ctl.writesClosed.Load() != 0
	return s, corrupt
}

func (c *core) length() (n uint64) {
	if c.closed.Load() || c.fg.Faulted() {
		return 0
	}
	defer c.fg.Guard(nil, "len", c.fg.Enable())
	h := c.ctl.head.Load()
	t := c.ctl.tail.Load()
	if d := t - h; d <= c.cap {
		return d
	}
	if int64(t-h) < 0 {
		return 0
	}
	return c.cap
}

// Inspect reports the state of a ring segment (KindRing or KindByteRing)
// opened by a tool with layout.Open(spec, layout.Expect{Kind: layout.KindAny}),
// without knowing its element type. It claims no role.
func Inspect(s *layout.Segment) (RingStats, error) {
	h := s.Header()
	if h.Kind != layout.KindRing && h.Kind != layout.KindByteRing {
		return RingStats{}, layout.WrapOp("shmring", "inspect", s.Raw().Spec().String(), fmt.Errorf("%w: segment holds a %s, not a ring", ErrTypeMismatch, h.Kind))
	}
	ctl, err := checkControl(s)
	if err != nil {
		return RingStats{}, err
	}
	capacity, err := checkCapacity(s.Raw().Spec().String(), h.Capacity, maxCapacity)
	if err != nil {
		return RingStats{}, err
	}
	c := core{ctl: ctl, cap: capacity, mask: capacity - 1, name: s.Raw().Spec().String()}
	c.fg.Init("shmring", c.name, s.Raw(), false)
	return c.stats(h.Kind)
}
