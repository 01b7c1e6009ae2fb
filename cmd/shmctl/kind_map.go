package main

import (
	"fmt"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/shmmap"
)

// Maps expose shmmap.Inspect, which reads a map of any key and value types:
// length and probe statistics from the slots' tag words, and per shard the
// writer lock's state, an odd sequence count (a write in progress, or left
// by a dead writer) and a pending redo record.
//
// A shard whose writer died is repaired by the map itself: the next writer,
// or a reader that finds the shard stuck, takes the lock, gets ErrOwnerDead
// and replays the redo record. The replay needs the key and value types, so
// doctor reports such a shard (any Put, Delete or Get on that shard repairs
// it) instead of repairing it.
func init() {
	probes[layout.KindMap] = probe{live: mapLive}
}

func mapLive(s *layout.Segment) (*Live, error) {
	st, err := shmmap.Inspect(s)
	if err != nil {
		return nil, err
	}
	l := &Live{
		Len: u64(uint64(st.Len)),
		Details: []Counter{
			{Name: "shards", Value: uint64(st.Shards)},
			{Name: "slots", Value: uint64(st.Slots)},
			{Name: "longest probe", Value: uint64(st.LongestProbe)},
		},
	}
	for i, sh := range st.Shard {
		role := fmt.Sprintf("shard %d lock", i)
		switch {
		case sh.Lock.NotRecoverable:
			l.Problems = append(l.Problems, Problem{What: "lock-not-recoverable",
				Detail: fmt.Sprintf("%s can never be locked again (recreate the map)", role)})
		case sh.Lock.OwnerDead:
			l.Owners = append(l.Owners, Owner{Role: role, ProcInfo: ProcInfo{PID: sh.Lock.Owner.PID, Start: sh.Lock.Owner.Start}})
			pending := ""
			if sh.PendingOp != "" {
				pending = fmt.Sprintf(", leaving its %s half done", sh.PendingOp)
			}
			l.Problems = append(l.Problems, Problem{What: "dead-lock-owner",
				Detail: fmt.Sprintf("%s is held by dead pid %d%s; the next operation on that shard replays its redo record", role, sh.Lock.Owner.PID, pending)})
		case sh.Lock.Locked:
			l.Owners = append(l.Owners, Owner{Role: role, ProcInfo: ProcInfo{PID: sh.Lock.Owner.PID, Start: sh.Lock.Owner.Start, Alive: true}})
		}
	}
	return l, nil
}
