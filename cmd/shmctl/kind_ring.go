package main

import (
	"fmt"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	"github.com/shmkit/shmkit/shmring"
)

// Rings (Ring[T] and ByteRing) expose shmring.Inspect, which reads the
// control block of a segment of any element type and validates the
// capacity and cursors.
//
// A dead role holder needs no repair for the ring to work: the next process
// that produces (or consumes) takes the role over by CAS when it finds the
// recorded holder dead, and resumes from the shared cursors. doctor reports
// it (the other side waits for a peer that will not come back until one is
// started), and --fix frees the role through shmring.ReleaseDeadRoles, so
// the segment no longer shows as stale.
func init() {
	p := probe{live: ringLive, repair: ringRepair}
	probes[layout.KindRing] = p
	probes[layout.KindByteRing] = p
}

func ringLive(s *layout.Segment) (*Live, error) {
	st, err := shmring.Inspect(s)
	if err != nil {
		return nil, err
	}
	l := &Live{
		Len:  u64(st.Len),
		Head: u64(st.Head),
		Tail: u64(st.Tail),
		In:   u64(st.Tail),
		Out:  u64(st.Head),
		Waiters: []Counter{
			{Name: "producer", Value: b2u(st.ProducerWaiting)},
			{Name: "consumer", Value: b2u(st.ConsumerWaiting)},
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
		l.Owners = append(l.Owners, Owner{Role: r.role, ProcInfo: ProcInfo{PID: r.h.PID, Start: r.h.Start, Alive: r.h.Alive}})
		if !r.h.Alive {
			l.Problems = append(l.Problems, Problem{
				What:    "dead-role",
				Fixable: true,
				Detail: fmt.Sprintf("the %s role is held by dead pid %d (%d %s in the ring); the next %s takes it over and resumes from the shared cursor",
					r.role, r.h.PID, st.Len, unit, r.role),
			})
		}
	}
	return l, nil
}

func ringRepair(spec string) ([]string, error) {
	s, err := layout.Open(spec, layout.Expect{Kind: layout.KindAny}, layout.WithSegment(segment.WithTrustAnyOwner()))
	if err != nil {
		return nil, err
	}
	defer s.Close()
	released, err := shmring.ReleaseDeadRoles(s)
	var acts []string
	for _, h := range released {
		acts = append(acts, fmt.Sprintf("released a ring role held by dead pid %d", h.PID))
	}
	return acts, err
}

// b2u shows a parked flag as a count of 0 or 1.
func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
