package main

import (
	"fmt"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/shmbus"
)

// Buses expose shmbus.Inspect, which reads the control block and the
// subscriber table of a segment of any element type and validates them.
//
// A dead subscriber needs no repair for the bus to work: a Block publisher
// skips it within a few milliseconds, and a new subscriber reuses a dead
// anonymous subscriber's record when no free one is left. doctor reports
// dead anonymous subscribers and a dead publisher, and --fix frees them
// through shmbus.ReleaseDeadSubscribers. A durable subscriber with no
// process is not a problem (its cursor waits for its process to come
// back); removing one is shmbus.RemoveSubscriber's job.
func init() {
	probes[layout.KindBus] = probe{live: busLive, repair: busRepair}
}

func busLive(s *layout.Segment) (*Live, error) {
	st, err := shmbus.Inspect(s)
	if err != nil {
		return nil, err
	}
	var lag uint64
	for _, sub := range st.Subscribers {
		lag = max(lag, sub.Lag)
	}
	l := &Live{
		Tail:   u64(st.Published),
		In:     u64(st.Published),
		Len:    u64(min(lag, st.Cap)),
		Closed: &st.Closed,
		Waiters: []Counter{
			{Name: "publisher", Value: b2u(st.PublisherWaiting)},
			{Name: "subscribers", Value: b2u(st.SubscriberWaiting)},
		},
		Details: []Counter{
			{Name: "overflow-" + st.Overflow.String(), Value: 1},
			{Name: "subscribers", Value: uint64(len(st.Subscribers))},
			{Name: "max-subscribers", Value: uint64(st.MaxSubscribers)},
		},
	}
	if st.Publisher.PID != 0 {
		l.Owners = append(l.Owners, Owner{Role: "publisher", ProcInfo: ProcInfo{PID: st.Publisher.PID, Start: st.Publisher.Start, Alive: st.Publisher.Alive}})
		if !st.Publisher.Alive {
			l.Problems = append(l.Problems, Problem{What: "dead-role", Fixable: true,
				Detail: fmt.Sprintf("the publisher role is held by dead pid %d; the next publisher takes it over", st.Publisher.PID)})
		}
	}
	for _, sub := range st.Subscribers {
		name := fmt.Sprintf("subscriber %d", sub.Index)
		if sub.Durable {
			name = fmt.Sprintf("subscriber %d %q", sub.Index, sub.Name)
		}
		l.Details = append(l.Details,
			Counter{Name: name + " cursor", Value: sub.Cursor},
			Counter{Name: name + " lag", Value: sub.Lag},
			Counter{Name: name + " lapped", Value: sub.Lapped},
			Counter{Name: name + " missed", Value: sub.Missed})
		if sub.Owner.PID == 0 {
			continue
		}
		l.Owners = append(l.Owners, Owner{Role: name, ProcInfo: ProcInfo{PID: sub.Owner.PID, Start: sub.Owner.Start, Alive: sub.Alive}})
		if !sub.Alive && !sub.Durable {
			l.Problems = append(l.Problems, Problem{What: "dead-participant", Fixable: true,
				Detail: fmt.Sprintf("%s belongs to dead pid %d (lag %d); a Block publisher skips it, doctor --fix frees its record", name, sub.Owner.PID, sub.Lag)})
		}
	}
	return l, nil
}

func busRepair(spec string) ([]string, error) {
	s, err := layout.Open(spec, layout.Expect{Kind: layout.KindAny})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	released, err := shmbus.ReleaseDeadSubscribers(s)
	var acts []string
	for _, r := range released {
		if r.Index < 0 {
			acts = append(acts, fmt.Sprintf("released the bus publisher role held by dead pid %d", r.Owner.PID))
			continue
		}
		acts = append(acts, fmt.Sprintf("freed the record of subscriber %d of dead pid %d", r.Index, r.Owner.PID))
	}
	return acts, err
}
