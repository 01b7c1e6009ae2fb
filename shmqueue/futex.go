package shmqueue

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/atomicx"
	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/internal/faultguard"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/sync"
)

// futexQueue is the process-local handle of the futex backend.
type futexQueue[T any] struct {
	ctl     *futexControl
	slots   []slot[T]
	mask    uint64
	cap     uint64
	members []member
	policy  sync.WaitPolicy
	fg      *faultguard.Latch // the handle's (Queue.fg)
	// light: this process may end a claim with a release store of the
	// slot's sequence word (sync.LightWakes); see settleSeq.
	light bool

	self uint64  // this process's proc.ID word
	me   *member // this handle's member record
	deadCache
	waitCounter
}

func initFutex[T any](s *layout.Segment, cp uint64) error {
	slots, err := layout.ViewSlice[slot[T]](s, 1, int(cp))
	if err != nil {
		return err
	}
	for i := range slots {
		slots[i].seq.Store(uint64(i))
	}
	return nil
}

// obstacle says why a claim could not be made and what to wait for.
type obstacle uint8

const (
	obNone  obstacle = iota
	obPark           // full (producer) or empty (consumer): park until a change
	obStuck          // the slot is claimed by a peer that has not finished
)

// snapshot is what a waiter saw; any change to it is worth a new look.
type snapshot struct {
	enq, deq, seq uint64
	slot          *atomic.Uint64
	pos           uint64 // the cursor position the waiter is at
	// deqUnread: a blocking push saw the slot full and did not read deq
	// (see tryPush). changed reports such a snapshot stale at once.
	deqUnread bool
}

func (q *futexQueue[T]) changed(s *snapshot) bool {
	return s.deqUnread || q.ctl.enq.Load() != s.enq || q.ctl.deq.Load() != s.deq || s.slot.Load() != s.seq
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// tryPush claims a run of free slots at the enqueue cursor and publishes
// vs[:n] into them. With n == 0 it says what stands in the way. A caller
// that will wait (block) may get a snapshot of a full slot taken without
// reading deq, for the wait to look again (see the full-slot case).
func (q *futexQueue[T]) tryPush(vs []T, s *snapshot, block bool) (int, obstacle, error) {
	lane := -1
	for {
		e := q.ctl.enq.Load()
		if e&closedBit != 0 {
			q.releaseLane(lane)
			return 0, obNone, ErrClosed
		}
		pos := e
		if pos >= posLimit-maxClaim {
			q.releaseLane(lane)
			return 0, obNone, corruptf("enqueue cursor %#x beyond the position range", e)
		}
		sl := &q.slots[pos&q.mask]
		seq := sl.seq.Load()
		v := seq &^ holeBit
		switch {
		case seq == pos:
			n := uint64(1)
			lim := uint64(min(len(vs), maxClaim))
			for n < lim && q.slots[(pos+n)&q.mask].seq.Load() == pos+n {
				n++
			}
			var err error
			if lane, err = q.announce(lane, laneWord(false, pos, int(n))); err != nil {
				return 0, obNone, err
			}
			if crashpoint.Enabled {
				crashpoint.Hit("shmqueue.push-announced")
			}
			if !q.ctl.enq.CompareAndSwap(e, pos+n) {
				continue
			}
			if crashpoint.Enabled {
				crashpoint.Hit("shmqueue.push-claimed")
			}
			lost := 0
			for i := uint64(0); i < n; i++ {
				d := &q.slots[(pos+i)&q.mask]
				d.val = vs[i]
				if !q.settleSeq(&d.seq, pos+i, pos+i+1) {
					lost++
				}
				if crashpoint.Enabled && i == 0 {
					crashpoint.Hit("shmqueue.push-published-first")
				}
			}
			q.releaseLane(lane)
			if lost > 0 {
				return int(n), obNone, corruptf("%d of %d claimed positions from %#x were skipped as holes while this producer was alive (PID namespace mismatch?)", lost, n, pos)
			}
			// Parked consumers wait for the item at the dequeue cursor:
			// only the producer of that position needs to wake them.
			// Check the parked bit first: it sits on a line nobody writes
			// while nobody parks, unlike the dequeue cursor.
			if q.ctl.items.Waiting() && q.ctl.deq.Load() >= pos {
				q.ctl.items.Notify()
			}
			return int(n), obNone, nil
		case v > pos:
			// Another producer claimed pos (and maybe a consumer released
			// it since): the cursor must have moved. If not, seq is garbage.
			if q.ctl.enq.Load() == e {
				q.releaseLane(lane)
				return 0, obNone, corruptf("slot %d seq %#x ahead of enqueue cursor %#x", pos&q.mask, seq, e)
			}
		case v == pos-q.cap+1 || seq == pos-q.cap:
			// The slot still holds position pos-cap: published and not yet
			// consumed (or being consumed), or not yet published.
			q.releaseLane(lane)
			// A blocking push that meets this slot state for the first time
			// waits for the slot without reading deq, the consumers' hottest
			// line: every read of it costs their next claim CAS a miss, and
			// a producer that keeps up meets a full slot on almost every
			// item. The wait reports such a snapshot stale at its first look
			// at the cursors (and before it would park), so if the slot is
			// still taken the next look reads deq and tells a stuck claim
			// from a full queue, and checks the cursors, as always. A Try
			// call must know at once: ErrFull would be a lie for a stuck one.
			if block && !(s.deqUnread && s.slot == &sl.seq && s.seq == seq) {
				*s = snapshot{enq: e, seq: seq, slot: &sl.seq, pos: pos, deqUnread: true}
				return 0, obPark, nil
			}
			d := q.ctl.deq.Load()
			if d <= pos && pos-d > q.cap {
				// d was read after e and only grows: pos-d can only be
				// smaller than it was, and it never exceeds cap. (d > pos
				// is legal: consumers moved on since e was read.)
				return 0, obNone, corruptf("enqueue cursor %#x, dequeue cursor %#x, capacity %d", e, d, q.cap)
			}
			*s = snapshot{enq: e, deq: d, seq: seq, slot: &sl.seq, pos: pos}
			if v == pos-q.cap+1 && d > pos-q.cap {
				return 0, obStuck, nil
			}
			return 0, obPark, nil
		default:
			q.releaseLane(lane)
			return 0, obNone, corruptf("slot %d seq %#x impossible at enqueue cursor %#x", pos&q.mask, seq, e)
		}
	}
}

// tryPop claims a run of published slots at the dequeue cursor and copies
// their items (skipping holes) into out. With n == 0 and no error it says
// what stands in the way.
func (q *futexQueue[T]) tryPop(out []T, s *snapshot) (int, obstacle, error) {
	lane := -1
	for {
		pos := q.ctl.deq.Load()
		if pos >= posLimit {
			q.releaseLane(lane)
			return 0, obNone, corruptf("dequeue cursor %#x beyond the position range", pos)
		}
		sl := &q.slots[pos&q.mask]
		seq := sl.seq.Load()
		v := seq &^ holeBit
		switch {
		case v == pos+1:
			n := uint64(1)
			lim := uint64(min(len(out), maxClaim))
			for n < lim && q.slots[(pos+n)&q.mask].seq.Load()&^holeBit == pos+n+1 {
				n++
			}
			var err error
			if lane, err = q.announce(lane, laneWord(true, pos, int(n))); err != nil {
				return 0, obNone, err
			}
			if crashpoint.Enabled {
				crashpoint.Hit("shmqueue.pop-announced")
			}
			if !q.ctl.deq.CompareAndSwap(pos, pos+n) {
				continue
			}
			if crashpoint.Enabled {
				crashpoint.Hit("shmqueue.pop-claimed")
			}
			got, lost := 0, 0
			for i := uint64(0); i < n; i++ {
				d := &q.slots[(pos+i)&q.mask]
				sq := d.seq.Load()
				if sq&holeBit == 0 {
					out[got] = d.val
					got++
				}
				// A slot released behind our back (see settleSeq) may have
				// been overwritten while we copied.
				if !q.settleSeq(&d.seq, sq, pos+i+q.cap) {
					lost++
				}
				if crashpoint.Enabled && i == 0 {
					crashpoint.Hit("shmqueue.pop-released-first")
				}
			}
			q.releaseLane(lane)
			lane = -1
			if lost > 0 {
				return 0, obNone, corruptf("%d of %d claimed positions from %#x were released by a peer while this consumer was alive (PID namespace mismatch?)", lost, n, pos)
			}
			// Parked producers wait for the slot at the enqueue cursor,
			// which is one of ours only if they have wrapped onto it.
			if q.ctl.slots.Waiting() && q.ctl.enq.Load()&^closedBit >= pos+q.cap {
				q.ctl.slots.Notify()
			}
			if got == 0 {
				continue // all holes: look again
			}
			return got, obNone, nil
		case v > pos+1:
			if q.ctl.deq.Load() == pos {
				q.releaseLane(lane)
				return 0, obNone, corruptf("slot %d seq %#x ahead of dequeue cursor %#x", pos&q.mask, seq, pos)
			}
		case seq == pos || v == pos+1-q.cap:
			// Not yet published, or the previous round's item is still
			// being consumed (then nothing can be claimed at pos).
			q.releaseLane(lane)
			lane = -1 // released: another goroutine may take it now
			e := q.ctl.enq.Load()
			ep := e &^ closedBit
			switch {
			case ep > pos && seq != pos:
				// The previous round's consumer may have released the slot
				// and a producer claimed pos since we read seq.
				if sl.seq.Load() != seq {
					continue
				}
				return 0, obNone, corruptf("dequeue cursor %#x, enqueue cursor %#x, slot %d seq %#x", pos, e, pos&q.mask, seq)
			case ep < pos:
				return 0, obNone, corruptf("dequeue cursor %#x ahead of enqueue cursor %#x", pos, e)
			case ep-pos > q.cap:
				// Producers never get more than cap ahead of consumers; the
				// dequeue cursor may have moved since we read it.
				if q.ctl.deq.Load() != pos {
					continue
				}
				return 0, obNone, corruptf("enqueue cursor %#x more than capacity %d ahead of dequeue cursor %#x", e, q.cap, pos)
			case ep > pos:
				*s = snapshot{enq: e, deq: pos, seq: seq, slot: &sl.seq, pos: pos}
				return 0, obStuck, nil
			case e&closedBit != 0:
				return 0, obNone, ErrClosed
			}
			*s = snapshot{enq: e, deq: pos, seq: seq, slot: &sl.seq, pos: pos}
			return 0, obPark, nil
		default:
			q.releaseLane(lane)
			return 0, obNone, corruptf("slot %d seq %#x impossible at dequeue cursor %#x", pos&q.mask, seq, pos)
		}
	}
}

// settleSeq ends a claim on one slot: it moves the slot's sequence word w
// from old (what the claimant saw) to new (published, or released), and
// reports false if w no longer holds old. Only a peer that wrongly judged
// the claimant dead and repaired its position (a hole skipped, a slot
// reclaimed) changes w under a live claim, and it can only happen when the
// processes do not share a PID namespace (see "Crash semantics"): false is
// that error, reported instead of writing over the repair.
//
// With light wakes (sync.LightWakes) the move is a check and then a
// release store, not a CAS. The peer most likely to be polling this line
// is the very one waiting for it (a producer for the slot a consumer
// releases, or a consumer for the item), and a locked instruction would
// stop the claimant until the line came back from that peer's core, once
// per item: natural-use throughput (one producer process, a consumer
// popping one item at a time) is 6-41% higher without it, over three
// alternating runs of six rounds (scripts/abbench.py). The price is
// the check's reach: a wrong repair that lands between the check and the
// store is written over, not reported (the queue then reports ErrCorrupt
// at that position a round later, or skips one item as a hole), where the
// CAS would have caught it. Both only follow the PID-namespace mistake.
func (q *futexQueue[T]) settleSeq(w *atomic.Uint64, old, new uint64) bool {
	if !q.light {
		return w.CompareAndSwap(old, new)
	}
	if w.Load() != old {
		return false
	}
	atomicx.StoreReleaseUint64(w, new)
	return true
}

// push pushes all of vs (block) or as much as fits now (!block: ErrFull if
// not all of it).
func (q *futexQueue[T]) push(ctx context.Context, vs []T, block bool) (int, error) {
	if len(vs) == 0 {
		return 0, nil // tryPush claims at least one slot
	}
	var s snapshot
	n, ob, err := q.tryPush(vs, &s, block)
	if n == len(vs) || err != nil {
		return n, err
	}
	return q.pushRest(ctx, vs, n, block, ob, &s)
}

// pushRest is push after its first claim attempt, which pushed done items,
// stopping at obstacle ob if it pushed none: the loop that
// waits, repairs and tries again. It is apart so that the usual push, done
// at the first attempt, does not set the loop up.
func (q *futexQueue[T]) pushRest(ctx context.Context, vs []T, done int, block bool, ob obstacle, s *snapshot) (int, error) {
	var stall time.Time // a Try operation's deadline for waiting out peers
	last := done        // what the last claim attempt pushed
	for done < len(vs) {
		if last == 0 {
			if err := q.obstructed(ctx, false, block, ob, s, &stall); err != nil {
				return done, err
			}
		}
		var err error
		last, ob, err = q.tryPush(vs[done:], s, block)
		done += last
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// obstructed deals with what stopped a claim (tryPush's or tryPop's obstacle
// ob and snapshot s, for a consumer or a producer): it waits, repairs or
// gives up. nil means "try again".
func (q *futexQueue[T]) obstructed(ctx context.Context, consumer, block bool, ob obstacle, s *snapshot, stall *time.Time) error {
	n := &q.ctl.slots
	if consumer {
		n = &q.ctl.items
	}
	if block {
		return q.wait(ctx, n, *s, ob, consumer)
	}
	if ob != obStuck {
		if consumer {
			return ErrEmpty
		}
		return ErrFull
	}
	// A peer's claim stands in the way, begun and not finished: a producer
	// claimed s.pos and has not published it (a push takes effect at its
	// claim, which fixes its place), or a consumer took s.pos-cap out and
	// has not released its slot. Either way ErrEmpty or ErrFull would be a
	// lie. Take over a dead claimant's position; wait out a live one.
	if q.repair(s, consumer) {
		return nil
	}
	return q.waitInFlight(stall, n, *s, consumer)
}

// pop pops at least one item into out (block), or what is there now.
func (q *futexQueue[T]) pop(ctx context.Context, out []T, block bool) (int, error) {
	if len(out) == 0 {
		return 0, nil // tryPop claims at least one slot
	}
	var s snapshot
	n, ob, err := q.tryPop(out, &s)
	if n > 0 || err != nil {
		return n, err
	}
	return q.popRest(ctx, out, block, ob, &s)
}

// popRest is pop after a first claim attempt that found nothing and
// stopped at obstacle ob (see pushRest).
func (q *futexQueue[T]) popRest(ctx context.Context, out []T, block bool, ob obstacle, s *snapshot) (int, error) {
	var stall time.Time
	for {
		if err := q.obstructed(ctx, true, block, ob, s, &stall); err != nil {
			return 0, err
		}
		var n int
		var err error
		if n, ob, err = q.tryPop(out, s); n > 0 || err != nil {
			return n, err
		}
	}
}

// pushOne and popOne are push and pop of one item. They make the first
// claim attempt themselves rather than through push and pop: a call level
// less is a tenth of a Push and Pop's time in one goroutine.
func (q *futexQueue[T]) pushOne(ctx context.Context, v T, block bool) error {
	one := [1]T{v}
	var s snapshot
	n, ob, err := q.tryPush(one[:], &s, block)
	if n == 1 || err != nil {
		return err
	}
	_, err = q.pushRest(ctx, one[:], 0, block, ob, &s)
	return err
}

func (q *futexQueue[T]) popOne(ctx context.Context, block bool) (T, error) {
	var one [1]T
	var s snapshot
	n, ob, err := q.tryPop(one[:], &s)
	if n == 0 && err == nil {
		_, err = q.popRest(ctx, one[:], block, ob, &s)
	}
	return one[0], err
}
