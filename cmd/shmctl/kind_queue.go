package main

import (
	"fmt"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/shmqueue"
)

// Queues. shmqueue.Inspect reads a queue's counters and member records
// from the read-only segment without attaching (no member record taken)
// whatever its element type. shmqueue.Remove also removes
// a SysV-backend queue's semaphore set, which removing only the segment
// would leak, so rm goes through it.
//
// A member record whose owner died is taken over by the next Open that
// finds no free record, and a dead participant's in-flight claim is
// repaired (skipped as a hole, or its slot reclaimed) by whichever waiter
// reaches it; so doctor reports dead participants but has nothing to fix.
// (shmqueue.Stats counts dead member records but does not name their pids.)
func init() {
	probes[layout.KindQueue] = probe{
		live:   queueLive,
		remove: func(spec string) error { return shmqueue.Remove(spec) },
	}
}

func queueLive(s *layout.Segment) (*Live, error) {
	st, err := shmqueue.Inspect(s)
	if err != nil {
		return nil, err
	}
	l := &Live{
		Len:         u64(uint64(max(st.Len, 0))),
		In:          u64(st.Pushes),
		Out:         u64(st.Pops),
		Closed:      &st.Closed,
		SyncBackend: st.Backend.String(),
		Waiters: []Counter{
			{Name: "producers", Value: b2u(st.ProducersWaiting)},
			{Name: "consumers", Value: b2u(st.ConsumersWaiting)},
		},
		Details: []Counter{
			{Name: "handles", Value: uint64(max(st.Handles, 0))},
			{Name: "dead handles", Value: uint64(max(st.DeadHandles, 0))},
			{Name: "holes skipped", Value: st.HolesSkipped},
			{Name: "slots reclaimed", Value: st.SlotsReclaimed},
			{Name: "lock repairs", Value: st.Repairs},
		},
	}
	if st.Backend == shmqueue.BackendSysV {
		// The set ipcs lists for it: ipcs -s -i ID, ipcrm -s ID (or -S KEY).
		l.Details = append(l.Details,
			Counter{Name: "semaphore key", Value: uint64(uint32(st.SemKey))},
			Counter{Name: "semaphore id", Value: uint64(max(st.SemID, 0))})
		if st.SemRemoved {
			l.Problems = append(l.Problems, Problem{
				What:   "semaphore-set-removed",
				Detail: fmt.Sprintf("the queue's SysV semaphore set (%s) was removed by someone (ipcrm?); the queue cannot be used any more; 'shmctl rm %s' removes the rest of it", semName(st.SemKey, st.SemID), s.Raw().Spec()),
			})
		}
	}
	if st.DeadHandles > 0 {
		l.Problems = append(l.Problems, Problem{
			What: "dead-participant",
			Detail: fmt.Sprintf("%d of %d member records belong to dead processes; the next Open that needs a record takes one over, and any claim they left in flight is repaired by the waiter that reaches it",
				st.DeadHandles, st.Handles),
		})
	}
	return l, nil
}

// semName names a semaphore set the way ipcs and ipcrm take it.
func semName(key int32, id int) string {
	if key == 0 {
		return fmt.Sprintf("id %d, IPC_PRIVATE", id)
	}
	return fmt.Sprintf("key %#x, id %d", uint32(key), id)
}
