package shmqueue

import (
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/internal/testproc"
)

// Crash points armed at random in kill-loop children, per backend and role.
var killPoints = map[Backend][2][]string{
	BackendFutex: {
		{"shmqueue.push-announced", "shmqueue.push-claimed", "shmqueue.push-published-first"},
		{"shmqueue.pop-announced", "shmqueue.pop-claimed", "shmqueue.pop-released-first", "shmqueue.repair-hole"},
	},
	BackendSysV: {
		{"shmqueue.sysv-push-committed", "shmqueue.sysv-reconcile"},
		{"shmqueue.sysv-pop-committed", "shmqueue.sysv-reconcile"},
	},
}

func killedBySIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// TestKillLoop runs 4 producer and 4 consumer processes that push and pop
// in random bursts, while the test SIGKILLs them at random moments and
// restarts them; half of the children are also armed to SIGKILL themselves
// inside a chosen crash window. Children record each push and pop in a
// shared ledger right after the call returns. At the end the test closes
// the queue for writes, lets consumers drain it, and checks: no item
// delivered twice, per-producer order per consumer, items delivered without
// a recorded push only as the in-flight item of a killed producer, and
// recorded pushes never delivered at most one per killed consumer. Every
// wait is bounded, so a wedged queue fails the test instead of hanging it.
//
// SHMKIT_KILLS=N sets the number of kills per backend (the batch run gets
// half), e.g. SHMKIT_KILLS=1000 for the long runs; SHMKIT_SOAK=1 means 2000.
func TestKillLoop(t *testing.T) {
	kills := 200
	if soak() {
		kills = 2000
	}
	if v, err := strconv.Atoi(os.Getenv("SHMKIT_KILLS")); err == nil && v > 0 {
		kills = v
	}
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) { runKillLoop(t, b, 1, kills) })
	}
	// PushBatch/PopBatch of 8: a kill can now land between publishing one
	// item of a claim and the next.
	t.Run("futex-batch", func(t *testing.T) { runKillLoop(t, BackendFutex, 8, kills/2) })
}

type killSlot struct {
	idx      int
	producer bool
	inc      uint64
	p        *testproc.Proc
}

// With batch > 1 children use PushBatch/PopBatch of that many items, and
// the bounds scale: a killed producer may have delivered up to batch items
// it never recorded, a killed consumer may lose up to batch items.
func runKillLoop(t *testing.T, b Backend, batch, target int) {
	q, spec := create[uint64](t, 64, WithBackend(b))
	lspec, l := createLedger(t, 8<<20)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	nextInc := uint64(1)
	killedProducers := map[uint64]bool{}
	killedConsumers := 0
	start := func(s *killSlot, arm bool) {
		s.inc = nextInc
		nextInc++
		l.progress[s.idx].Store(0)
		a := childArgs{queue: spec, ledger: lspec, inc: s.inc, count: -1, slot: s.idx, batch: batch, pace: true, recordPushes: true}
		child, role := consumerChild, 1
		if s.producer {
			child, role = producerChild, 0
		}
		cmd := child.Command(t, a.strings()...)
		if arm && rng.IntN(2) == 0 {
			pts := killPoints[b][role]
			cmd.Env = append(cmd.Env, crashpoint.Arm(pts[rng.IntN(len(pts))], 1+rng.IntN(300)))
		}
		s.p = testproc.StartCmd(t, cmd)
	}
	died := func(s *killSlot) {
		if s.producer {
			killedProducers[s.inc] = true
		} else {
			killedConsumers++
		}
	}
	slots := make([]*killSlot, 8)
	for i := range slots {
		slots[i] = &killSlot{idx: i, producer: i < 4}
		start(slots[i], true)
	}

	parentKills, selfKills := 0, 0
	limit := time.Now().Add(3*time.Minute + time.Duration(target)*200*time.Millisecond)
	began := time.Now()
	for parentKills+selfKills < target {
		if time.Now().After(limit) {
			t.Fatalf("only %d kills before the time limit", parentKills+selfKills)
		}
		time.Sleep(time.Duration(500+rng.IntN(3000)) * time.Microsecond)
		for _, s := range slots {
			select {
			case <-s.p.Done():
				err := s.p.Wait(time.Minute) // already exited: returns at once
				if !killedBySIGKILL(err) {
					t.Fatalf("child %d exited: %v\n%s", s.inc, err, s.p.Output())
				}
				selfKills++
				died(s)
				start(s, true)
			default:
			}
		}
		s := slots[rng.IntN(len(slots))]
		if l.progress[s.idx].Load() == 0 {
			continue // still starting up; killing it now tests nothing
		}
		s.p.Kill()
		parentKills++
		died(s)
		start(s, true)
	}

	// Wind down: producers stop, the queue is closed, consumers drain it.
	// A child armed with a crash point may still die on the way: restart
	// it unarmed.
	l.stop.Store(1)
	for _, s := range slots[:4] {
		if err := s.p.Wait(time.Minute); err != nil {
			require.True(t, killedBySIGKILL(err), "producer %d: %v\n%s", s.inc, err, s.p.Output())
			selfKills++
			died(s)
		}
	}
	require.NoError(t, q.CloseWrites())
	for _, s := range slots[4:] {
		for {
			err := s.p.Wait(time.Minute)
			if err == nil {
				break
			}
			require.True(t, killedBySIGKILL(err), "consumer %d (deadlock?): %v\n%s", s.inc, err, s.p.Output())
			selfKills++
			died(s)
			start(s, false)
		}
	}

	ents := l.entries()
	popped := checkDelivery(t, ents)
	pushed := map[uint64]bool{}
	recorded := map[uint64]uint64{} // producer incarnation -> pushes recorded
	closed := 0
	for _, e := range ents {
		switch e.kind {
		case kindPush:
			require.Equal(t, recorded[e.who], itemSeq(e.item), "producer %d records pushes in order", e.who)
			recorded[e.who]++
			pushed[e.item] = true
		case kindClosed:
			closed++
		}
	}
	require.NotZero(t, closed)
	unrecorded := map[uint64]int{}
	for item := range popped {
		if pushed[item] {
			continue
		}
		inc := itemInc(item)
		require.True(t, killedProducers[inc], "item %#x delivered but never pushed by a live producer", item)
		s := itemSeq(item)
		require.True(t, s >= recorded[inc] && s < recorded[inc]+uint64(batch),
			"item %d of producer %d delivered unrecorded: only the in-flight call's items (from %d, %d of them) may be", s, inc, recorded[inc], batch)
		unrecorded[inc]++
	}
	unrecordedTotal := 0
	for _, n := range unrecorded {
		unrecordedTotal += n
	}
	lost := 0
	for item := range pushed {
		if _, ok := popped[item]; !ok {
			lost++
		}
	}
	require.LessOrEqual(t, lost, batch*killedConsumers, "recorded pushes lost beyond the in-flight call of each killed consumer")
	st, err := q.Stats()
	require.NoError(t, err)
	require.Equal(t, 0, st.Len)
	// Children killed while parked leave at most the notifiers' parked
	// bits set (never a count that makes peers wake nobody for ever): the
	// next notify (CloseWrites again notifies both sides) clears them.
	require.NoError(t, q.CloseWrites())
	st, err = q.Stats()
	require.NoError(t, err)
	require.False(t, st.ProducersWaiting, "a parked bit outlived the next notify")
	require.False(t, st.ConsumersWaiting, "a parked bit outlived the next notify")
	if b == BackendFutex {
		// Dead children's member records are freed by the next Open.
		q2, err := Open[uint64](spec)
		require.NoError(t, err)
		st2, err := q2.Stats()
		require.NoError(t, err)
		require.NoError(t, q2.Close())
		require.Zero(t, st2.DeadHandles)
		require.Equal(t, 2, st2.Handles, "only the test's two handles are left")
	}
	dup := 0 // checkDelivery fails the test on any duplicate; counted for the log
	t.Logf("%s batch %d: %d kills (%d by the test, %d at crash points) in %v; %d pushes recorded, %d items delivered, %d delivered unrecorded (in flight in a killed producer), %d lost with %d killed consumers, %d duplicated; holes skipped %d, slots reclaimed %d, lock repairs %d",
		b, batch, parentKills+selfKills, parentKills, selfKills, time.Since(began).Round(time.Millisecond), len(pushed), len(popped), unrecordedTotal, lost, killedConsumers, dup,
		st.HolesSkipped, st.SlotsReclaimed, st.Repairs)
}
