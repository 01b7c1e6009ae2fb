package fuzz_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/mem"
	"github.com/shmkit/shmkit/internal/proc"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/shmqueue"
)

// Adversarial values, not random ones: a hostile peer writes into a queue
// exactly the values that sit on the edges of its arithmetic and of its
// trust in peers (cursors just past the capacity and wrapped around 2^64,
// sequence words that look ready for a position far ahead, member records
// naming this very process with the right and a wrong start time, lanes
// claiming the most positions a lane can, SysV control words at their
// maximum). Every operation must return within its deadline (Try
// operations within shmqueue.TryStallLimit) without a panic or fault,
// with an error that wraps a shmkit sentinel; values that no legal history
// produces must be reported as ErrCorrupt by some operation.
//
// The offsets below are the queue's on-segment format (asserted in
// shmqueue's layout tests): futex region 0 holds enq at 0 and deq at 128;
// region 1 is the slot array {seq uint64; val item}; region 2 the member
// records {owner uint64; lanes [15]uint64}, 128 bytes each. SysV region 0
// holds head at 0, tail at 8, closed (uint32) at 16, repairs at 24. A lane
// word is active<<63 | pop<<62 | (count-1)<<56 | position.

const (
	qCap       = 8
	laneActive = uint64(1) << 63
	lanePop    = uint64(1) << 62
)

type qWords struct {
	ctl, slots, members []atomic.Uint64
	slotWords           int
}

func queueWords(t *testing.T, q *shmqueue.Queue[item]) qWords {
	t.Helper()
	seg := q.Segment()
	b := seg.Raw().Bytes()
	region := func(i int) []atomic.Uint64 {
		r := seg.Header().Regions[i]
		w, err := mem.Slice[atomic.Uint64](b[r.Off:r.Off+r.Size], int(r.Size/8))
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	w := qWords{ctl: region(0), slots: region(1)}
	w.slotWords = len(w.slots) / qCap
	if q.Backend() == shmqueue.BackendFutex {
		w.members = region(2)
	}
	return w
}

func (w qWords) seq(i int) *atomic.Uint64 { return &w.slots[i*w.slotWords] }

type queueAdversary struct {
	name    string
	corrupt bool // some operation must say ErrCorrupt
	write   func(w qWords)
}

func futexAdversaries() []queueAdversary {
	self := proc.Self()
	me := self.Word()
	wrongStart := proc.ID{PID: self.PID, Start: self.Start + 12345}.Word()
	max64 := uint64(math.MaxUint64)
	forgeLanes := func(owner uint64, lane uint64) func(w qWords) {
		return func(w qWords) {
			// Position 2 claimed by a producer that "has not published":
			// enq past it, seq still 2, a lane covering it.
			w.ctl[0].Store(3)
			w.seq(2).Store(2)
			for r := 1; r < len(w.members)/16; r++ { // every record but the handle's own (0)
				w.members[r*16].Store(owner)
				for l := 1; l < 16; l++ {
					w.members[r*16+l].Store(lane)
				}
			}
		}
	}
	return []queueAdversary{
		{"enq-just-past-capacity", true, func(w qWords) { w.ctl[0].Store(qCap + 1) }},
		{"enq-2^64-1", true, func(w qWords) { w.ctl[0].Store(max64) }},
		{"enq-wrapped-2^64-cap", true, func(w qWords) { w.ctl[0].Store(max64 - qCap + 1) }},
		{"enq-closed-bit-and-max-position", true, func(w qWords) { w.ctl[0].Store(1<<63 | (1<<56 - 1)) }},
		{"deq-past-enq", true, func(w qWords) { w.ctl[16].Store(4) }},
		{"deq-2^64-1", true, func(w qWords) { w.ctl[16].Store(max64) }},
		{"both-wrapped-near-2^64", true, func(w qWords) { w.ctl[0].Store(max64 - 1); w.ctl[16].Store(max64 - 3) }},
		{"seq-ready-far-ahead", true, func(w qWords) {
			for i := range qCap {
				w.seq(i).Store(uint64(i) + 1000*qCap + 1)
			}
		}},
		{"seq-ready-far-ahead-as-hole", true, func(w qWords) {
			for i := range qCap {
				w.seq(i).Store((uint64(i) + 1<<40 + 1) | 1<<63)
			}
		}},
		{"seq-max", true, func(w qWords) {
			for i := range qCap {
				w.seq(i).Store(max64)
			}
		}},
		// Claims in the name of this very process: trusted as live, so
		// Try operations wait them out for TryStallLimit at most.
		{"lanes-own-pid-right-start", false, forgeLanes(me, laneActive|63<<56|2)},
		// A wrong start time is a dead process: the claim is repaired.
		{"lanes-own-pid-wrong-start", false, forgeLanes(wrongStart, laneActive|63<<56|2)},
		{"lanes-huge-counts-all-bits", false, forgeLanes(me, max64)},
		{"lanes-pop-claims-own-pid", false, forgeLanes(me, laneActive|lanePop|63<<56)},
		{"this-handles-record-owned-by-wrong-start", false, func(w qWords) {
			w.members[0].Store(wrongStart)
			for l := 1; l < 16; l++ {
				w.members[l].Store(max64)
			}
		}},
		{"every-record-owned-by-own-pid", false, func(w qWords) {
			for r := 0; r < len(w.members)/16; r++ {
				w.members[r*16].Store(me)
			}
		}},
	}
}

func sysvAdversaries() []queueAdversary {
	max64 := uint64(math.MaxUint64)
	return []queueAdversary{
		{"tail-max", true, func(w qWords) { w.ctl[1].Store(max64) }},
		{"head-and-tail-max", true, func(w qWords) { w.ctl[0].Store(max64); w.ctl[1].Store(max64) }},
		{"tail-just-past-capacity", true, func(w qWords) { w.ctl[1].Store(qCap + 3) }},
		{"head-past-tail", true, func(w qWords) { w.ctl[0].Store(3) }},
		{"tail-wrapped", true, func(w qWords) { w.ctl[0].Store(max64 - 1); w.ctl[1].Store(2) }},
		{"closed-and-repairs-max", false, func(w qWords) {
			w.ctl[2].Store(max64) // closed (uint32) and its padding
			w.ctl[3].Store(max64) // repairs
		}},
	}
}

func TestHostileQueueAdversarialValues(t *testing.T) {
	for _, b := range []shmqueue.Backend{shmqueue.BackendFutex, shmqueue.BackendSysV} {
		advs := futexAdversaries()
		if b == shmqueue.BackendSysV {
			advs = sysvAdversaries()
		}
		for _, a := range advs {
			t.Run(b.String()+"/"+a.name, func(t *testing.T) { adversarialQueue(t, b, a) })
		}
	}
}

func adversarialQueue(t *testing.T, b shmqueue.Backend, a queueAdversary) {
	spec := hostileSpec(t, "adv-queue")
	q, err := shmqueue.Create[item](spec, qCap, shmqueue.WithBackend(b), shmqueue.WithMaxHandles(4))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close(); _ = shmqueue.Remove(spec) })
	for i := range 2 {
		if err := q.TryPush(mkItem(uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	a.write(queueWords(t, q))

	buf := make([]item, 4)
	ops := []struct {
		name string
		f    func(ctx context.Context) error
	}{
		{"TryPush", func(context.Context) error { return q.TryPush(mkItem(7)) }},
		{"TryPop", func(context.Context) error { _, err := q.TryPop(); return err }},
		{"TryPopBatch", func(context.Context) error { _, err := q.TryPopBatch(buf); return err }},
		{"Pop", func(ctx context.Context) error { _, err := q.Pop(ctx); return err }},
		{"PopBatch", func(ctx context.Context) error { _, err := q.PopBatch(ctx, buf); return err }},
		{"Push", func(ctx context.Context) error { return q.Push(ctx, mkItem(8)) }},
		{"PushBatch", func(ctx context.Context) error { _, err := q.PushBatch(ctx, buf); return err }},
		{"Len+Stats", func(context.Context) error { _ = q.Len(); _, err := q.Stats(); return err }},
		{"Inspect", func(context.Context) error { _, err := shmqueue.Inspect(q.Segment()); return err }},
		{"Open", func(context.Context) error {
			q2, err := shmqueue.Open[item](spec)
			if err == nil {
				_, err = q2.TryPop()
				_ = q2.Close()
			}
			return err
		}},
	}
	ok := append([]error{shmqueue.ErrCapacity}, hostileOK...)
	sawCorrupt := false
	for round := range 2 { // repeat: repairs and partial progress change the state
		for _, op := range ops {
			err, took, panicked := runBounded(op.f)
			if panicked != nil {
				t.Fatalf("%s (round %d) panicked: %v", op.name, round, panicked)
			}
			limit := hostileOpDeadline + shmqueue.TryStallLimit + time.Second
			if took > limit {
				t.Errorf("%s (round %d) took %v (limit %v)", op.name, round, took, limit)
			}
			if err != nil && !wrapsAny(err, ok) {
				t.Errorf("%s (round %d): error wraps no shmkit sentinel: %v", op.name, round, err)
			}
			if errors.Is(err, layout.ErrCorrupt) {
				sawCorrupt = true
			}
		}
	}
	if a.corrupt && !sawCorrupt {
		t.Errorf("no operation reported ErrCorrupt for impossible values")
	}
}

// runBounded runs f with hostileOpDeadline, recovering a panic or fault.
func runBounded(f func(ctx context.Context) error) (err error, took time.Duration, panicked any) {
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				panicked = fmt.Sprintf("%v\n%s", r, debug.Stack())
			}
		}()
		debug.SetPanicOnFault(true)
		ctx, cancel := context.WithTimeout(context.Background(), hostileOpDeadline)
		defer cancel()
		err = f(ctx)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		panic("a queue operation hung for 30s under adversarial values")
	}
	return err, time.Since(start), panicked
}
