package main

import (
	"fmt"
	"strings"

	"github.com/shmkit/shmkit/internal/mem"
	"github.com/shmkit/shmkit/layout"
	shsync "github.com/shmkit/shmkit/sync"
)

// Values. A Value[T] segment is one T; what it holds live is whatever
// shmkit sync.Mutex values T contains. shmctl finds them from the stored
// type layout (a field whose layout is exactly sync.Mutex's) and reads each
// one's State, which says whether it is locked, by whom, and whether the
// holder died.
//
// A mutex whose owner died is reported, not repaired: the data it guards
// belongs to the program, which alone can repair it when its next Lock
// returns ErrOwnerDead. Unlocking it from here would hide the damage.
func init() {
	probes[layout.KindValue] = probe{live: valueLive}
}

// mutexLayout is the layout text of shmkit's sync.Mutex in this build.
var mutexLayout = func() string {
	ti, err := layout.DescribeOf[shsync.Mutex]()
	if err != nil {
		panic(err)
	}
	l, err := layout.ParseLayout(ti.Layout)
	if err != nil {
		panic(err)
	}
	return l.Type.Text
}()

// maxLocksShown bounds how many mutexes of one value shmctl reads.
const maxLocksShown = 1024

func valueLive(s *layout.Segment) (*Live, error) {
	types := s.Types()
	if len(types) != 1 || !strings.Contains(types[0].Layout, mutexLayout) {
		return nil, nil // nothing live to show
	}
	t, err := layout.ParseLayout(types[0].Layout)
	if err != nil {
		return nil, fmt.Errorf("%w: stored type layout: %v", layout.ErrCorrupt, err)
	}
	region := s.Region(0)
	l := &Live{}
	locks := t.Type.Find(mutexLayout, maxLocksShown)
	for _, loc := range locks {
		if loc.Off > uint64(len(region)) {
			return nil, fmt.Errorf("%w: mutex %s at offset %d outside the %d-byte value", layout.ErrCorrupt, loc.Path, loc.Off, len(region))
		}
		m, err := mem.Ptr[shsync.Mutex](region[loc.Off:])
		if err != nil {
			return nil, fmt.Errorf("%w: mutex %s: %v", layout.ErrCorrupt, loc.Path, err)
		}
		st := m.State()
		role := "lock " + loc.Path
		switch {
		case st.NotRecoverable:
			l.Problems = append(l.Problems, Problem{What: "lock-not-recoverable",
				Detail: fmt.Sprintf("%s was unlocked after its owner died without being marked consistent; it can never be locked again (recreate the segment)", role)})
		case st.OwnerDead:
			l.Owners = append(l.Owners, Owner{Role: role, ProcInfo: ProcInfo{PID: st.Owner.PID, Start: st.Owner.Start}})
			l.Problems = append(l.Problems, Problem{What: "dead-lock-owner",
				Detail: fmt.Sprintf("%s is held by dead pid %d; the next Lock returns ErrOwnerDead and must repair the data it guards", role, st.Owner.PID)})
		case st.Locked:
			l.Owners = append(l.Owners, Owner{Role: role, ProcInfo: ProcInfo{PID: st.Owner.PID, Start: st.Owner.Start, Alive: true}})
		}
	}
	l.Details = append(l.Details, Counter{Name: "locks", Value: uint64(len(locks))})
	return l, nil
}
