package main

import (
	"fmt"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/shmring"
)

// Rings (Ring[T] and ByteRing) expose shmring.Inspect, which reads the
// control block of a segment of any element type and validates the
// capacity and cursors.
//
// A dead role holder needs no repair: the next process that produces (or
// consumes) takes the role over by CAS when it finds the recorded holder
// dead, and resumes from the shared cursors. So doctor reports a dead role
// (the ring's other side will wait for a peer that will never come back
// until one is started) but has nothing to fix.
func init() {
	p := probe{live: ringLive}
	probes[layout.KindRing] = p
	probes[layout.KindByteRing] = p
}

func ringLive(s *layout.Segment) (*Live, error) {
	st, err := shmring.Inspect(s)
	if err != nil {
		return nil, err
	}
	if st.Corrupt != nil {
		return nil, st.Corrupt
	}
	l := &Live{
		Len:  u64(st.Len),
		Head: u64(st.Head),
		Tail: u64(st.Tail),
		In:   u64(st.Tail),
		Out:  u64(st.Head),
		Waiters: []Counter{
			{Name: "producer", Value: uint64(st.ProducerWaiters)},
			{Name: "consumer", Value: uint64(st.ConsumerWaiters)},
		},
	}
	unit := "items"
	if st.Kind == layout.KindByteRing {
		unit = "bytes"
	}
	for _, r := range []struct {
		role string
		h    shmring.RoleHolder
	}{{"producer", st.Producer}, {"consumer", st.Consumer}} {
		if r.h.PID == 0 {
			continue
		}
		l.Owners = append(l.Owners, Owner{Role: r.role, ProcInfo: ProcInfo{PID: r.h.PID, Start: uint64(r.h.StartLow), Alive: r.h.Alive}})
		if !r.h.Alive {
			l.Problems = append(l.Problems, Problem{
				What: "dead-role",
				Detail: fmt.Sprintf("the %s role is held by dead pid %d (%d %s in the ring); the next %s takes it over and resumes from the shared cursor",
					r.role, r.h.PID, st.Len, unit, r.role),
			})
		}
	}
	return l, nil
}
