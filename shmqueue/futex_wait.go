package shmqueue

import (
	"context"
	"errors"
	"time"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/internal/proc"
	"github.com/shmkit/shmkit/sync"
)

// Waiting (futex backend). A blocked call waits with the one waiter of
// shmkit, sync.Notifier.WaitPoll, under the handle's WaitPolicy: a short
// spin, yielding re-checks (DefaultWaitPolicy: about 100 µs), then a park
// on the items (consumers) or slots (producers) notifier. Its ready check
// is "the snapshot the caller saw is stale": the caller then looks again.
//
// Parks are bounded, because a claimant that dies never notifies: a waiter
// for a stuck slot (claimed, not finished) polls every stuckCheck and
// repairs the slot if its claimant died; a waiter on an empty or full
// queue looks again every parkRecheck.
const (
	// stuckCheck is how long a waiter lets a claimed-but-unfinished slot
	// sit between checks of whether its claimant is alive.
	stuckCheck = time.Millisecond
	// parkRecheck bounds how long a parked waiter on an empty or full
	// queue sleeps without being woken.
	parkRecheck = 10 * time.Millisecond
)

// wait returns once the snapshot s may be stale (the caller looks again),
// or with ctx's error when ctx ends. It runs under the fault guard, the
// whole wait (its checks and repairs run inside WaitPoll): a memory fault
// returns the handle's fault error.
func (q *futexQueue[T]) wait(ctx context.Context, n *sync.Notifier, s snapshot, ob obstacle, consumer bool) (err error) {
	defer q.fg.Guard(&err, opName(consumer), q.fg.Enable())
	i := 0
	ready := func() bool {
		// Watch the slot we wait for on every check; the cursors (the
		// peers' hottest lines: every read of them costs the next claim
		// CAS a cache miss) only every 16th check, and always once our
		// parked bit is set: the last check before a sleep must see
		// everything a Notify announces (CloseWrites, a cursor move).
		if s.slot.Load() != s.seq {
			return true
		}
		i++
		if i&15 == 0 || n.Waiting() {
			return q.changed(&s)
		}
		return false
	}
	every, poll := parkRecheck, sync.LookAgain
	if ob == obStuck {
		every = stuckCheck
		poll = func() bool {
			q.repair(&s, consumer)
			return true
		}
	}
	q.enter(consumer)
	defer q.leave(consumer)
	if ob == obStuck {
		// What ends this wait is the claimant's seq store, a release store
		// where the claimant's process has light wakes (see settleSeq;
		// this process may not): the park must fence for it.
		// An empty or full queue (obPark) is ended by a peer's cursor CAS
		// first, which orders that peer's load of the parked bit by itself,
		// and the last check before a sleep reads the cursors.
		return n.WaitPollFenced(ctx, q.policy, ready, every, poll)
	}
	return n.WaitPoll(ctx, q.policy, ready, every, poll)
}

// opName names a waiting side's operation in a fault error.
func opName(consumer bool) string {
	if consumer {
		return "pop"
	}
	return "push"
}

// waitInFlight is how a Try operation waits out the claim of the peer
// that stands at s.pos (claimed, not yet published or released): with the
// same waiter as a blocking call, repairing the claim if its claimant
// dies, but for at most TryStallLimit in all for the whole Try call
// (*deadline, set by the first wait), after which it returns an error
// wrapping ErrPeerStalled. It returns nil when s may be stale.
func (q *futexQueue[T]) waitInFlight(deadline *time.Time, n *sync.Notifier, s snapshot, consumer bool) error {
	if deadline.IsZero() {
		*deadline = time.Now().Add(TryStallLimit)
	}
	ctx, cancel := context.WithDeadline(context.Background(), *deadline)
	defer cancel()
	if err := q.wait(ctx, n, s, obStuck, consumer); err != nil {
		if errors.Is(err, ErrTruncated) {
			return err
		}
		return stalled(s.pos, consumer)
	}
	return nil
}

func (q *futexQueue[T]) repair(s *snapshot, consumer bool) bool {
	if consumer {
		return q.repairPush(s)
	}
	return q.repairPop(s)
}

// repairPush turns position s.pos into a hole if the producer that claimed
// it is dead (see the package documentation for why this cannot hit a live
// producer). It reports whether it did.
func (q *futexQueue[T]) repairPush(s *snapshot) bool {
	p := s.pos
	if s.seq != p || q.claimLive(false, p) {
		return false
	}
	if crashpoint.Enabled {
		crashpoint.Hit("shmqueue.repair-hole")
	}
	if !s.slot.CompareAndSwap(p, (p+1)|holeBit) {
		return false
	}
	q.ctl.holes.Add(1)
	q.ctl.items.Notify()
	return true
}

// repairPop releases the slot of position s.pos-cap if the consumer that
// claimed it is dead; its item is lost with that consumer.
func (q *futexQueue[T]) repairPop(s *snapshot) bool {
	p := s.pos - q.cap
	if s.seq&^holeBit != p+1 || q.claimLive(true, p) {
		return false
	}
	if !s.slot.CompareAndSwap(s.seq, p+q.cap) {
		return false
	}
	q.ctl.reclaimed.Add(1)
	q.ctl.slots.Notify()
	return true
}

func (q *futexQueue[T]) closeWrites() error {
	for {
		e := q.ctl.enq.Load()
		if e&closedBit != 0 || q.ctl.enq.CompareAndSwap(e, e|closedBit) {
			break
		}
	}
	q.ctl.items.Notify()
	q.ctl.slots.Notify()
	return nil
}

func (q *futexQueue[T]) length() int { return futexLen(q.ctl, q.cap) }

func futexLen(ctl *futexControl, cp uint64) int {
	d := ctl.deq.Load()
	e := ctl.enq.Load() &^ closedBit
	if e <= d {
		return 0
	}
	return int(min(e-d, cp))
}

func (q *futexQueue[T]) stats() Stats { return futexStats(q.ctl, q.members, q.cap) }

// waitSource: an item can be popped, or TryPop has something to say, as
// soon as the cursors differ: a published item or a hole at the dequeue
// cursor, an item being written (TryPop repairs it if its producer died,
// else waits for it to be published), closed (the closed bit), or
// garbage (ErrCorrupt). Producers notify items when they publish the item
// at the dequeue cursor, which is the one that makes an empty queue
// non-empty.
func (q *futexQueue[T]) waitSource() (*sync.Notifier, func() bool) {
	return &q.ctl.items, func() bool { return q.ctl.enq.Load() != q.ctl.deq.Load() }
}

func futexStats(ctl *futexControl, members []member, cp uint64) Stats {
	e := ctl.enq.Load()
	s := Stats{
		Len:              futexLen(ctl, cp),
		Pushes:           e &^ closedBit,
		Pops:             ctl.deq.Load(),
		ProducersWaiting: ctl.slots.Waiting(),
		ConsumersWaiting: ctl.items.Waiting(),
		HolesSkipped:     ctl.holes.Load(),
		SlotsReclaimed:   ctl.reclaimed.Load(),
		Closed:           e&closedBit != 0,
	}
	for i := range members {
		if o := members[i].owner.Load(); o != 0 {
			s.Handles++
			if proc.Dead(proc.FromWord(o)) {
				s.DeadHandles++
			}
		}
	}
	return s
}
