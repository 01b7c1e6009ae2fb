package shmtest_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/segment"
	"github.com/shmkit/shmkit/shmqueue"
	"github.com/shmkit/shmkit/shmtest"
	"github.com/stretchr/testify/require"
)

// queueProducer pushes producer<<32|seq forever into queue args[0],
// recording "pushing" and "pushed" in ledger args[1]; args[2] is its id.
var queueProducer = shmtest.Register("shmtest-queue-producer", func(args []string) error {
	q, err := shmqueue.Open[uint64](args[0])
	if err != nil {
		return err
	}
	l, err := shmtest.OpenLedger(args[1])
	if err != nil {
		return err
	}
	producer, _ := strconv.ParseUint(args[2], 10, 32)
	for seq := uint64(0); ; seq++ {
		if err := l.Pushing(uint32(producer), seq); err != nil {
			return err
		}
		if err := q.Push(context.Background(), producer<<32|seq); err != nil {
			return err
		}
		if err := l.Pushed(uint32(producer), seq); err != nil {
			return err
		}
	}
})

// queueConsumer pops forever from queue args[0], recording "popped".
var queueConsumer = shmtest.Register("shmtest-queue-consumer", func(args []string) error {
	q, err := shmqueue.Open[uint64](args[0])
	if err != nil {
		return err
	}
	l, err := shmtest.OpenLedger(args[1])
	if err != nil {
		return err
	}
	for {
		v, err := q.Pop(context.Background())
		if err != nil {
			return err
		}
		if err := l.Popped(uint32(v>>32), v&(1<<32-1)); err != nil {
			return err
		}
	}
})

// TestQueueRandomKills is the harness at work on an MPMC queue: three
// producer and two consumer processes, one of them SIGKILLed and replaced
// every few milliseconds. Afterwards every pushed item was delivered once,
// except at most one per killed consumer (the item it had popped but not
// yet recorded, or had claimed inside Pop), and never twice.
func TestQueueRandomKills(t *testing.T) {
	spec := "posix:/" + testproc.UniqueName("shmtest-queue")
	q, err := shmqueue.Create[uint64](spec, 16)
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close(); _ = segment.Remove(spec) })
	ledger := shmtest.NewLedger(t)

	nextID := 0
	start := func(c shmtest.Child) *shmtest.Proc {
		nextID++
		opts := []shmtest.Option{shmtest.Args(spec, ledger.Path(), strconv.Itoa(nextID))}
		// Half of the processes die by themselves inside the queue's
		// claim-to-publish (or claim-to-release) window, which a random
		// kill almost never hits.
		if rand.IntN(2) == 0 {
			point := "shmqueue.push-claimed"
			if c == queueConsumer {
				point = "shmqueue.pop-claimed"
			}
			opts = append(opts, shmtest.KillAt(point, 1+rand.IntN(50)))
		}
		return c.Start(t, opts...)
	}
	producers := []*shmtest.Proc{start(queueProducer), start(queueProducer), start(queueProducer)}
	consumers := []*shmtest.Proc{start(queueConsumer), start(queueConsumer)}
	kills, consumerKills := 40, 0
	if testing.Short() {
		kills = 10
	}
	for range kills {
		time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond) // the kill moment is the point
		if i := rand.IntN(5); i < 3 {
			producers[i].Kill()
			requireKilled(t, producers[i])
			producers[i] = start(queueProducer)
		} else {
			consumers[i-3].Kill()
			requireKilled(t, consumers[i-3])
			consumerKills++
			consumers[i-3] = start(queueConsumer)
		}
	}
	for _, p := range producers {
		p.Kill()
		requireKilled(t, p)
	}
	for _, p := range consumers {
		p.Kill()
		requireKilled(t, p)
		consumerKills++
	}
	// Drain what the dead left behind: holes and stuck slots are repaired
	// by whoever reaches them.
	for {
		v, err := q.TryPop()
		if errors.Is(err, shmqueue.ErrEmpty) {
			break
		}
		require.NoError(t, err)
		require.NoError(t, ledger.Popped(uint32(v>>32), v&(1<<32-1)))
	}
	entries, err := ledger.Entries()
	require.NoError(t, err)
	pops := 0
	for _, e := range entries {
		if e.Op == shmtest.Popped {
			pops++
		}
	}
	st, err := q.Stats()
	require.NoError(t, err)
	t.Logf("%d ledger entries, %d pops, %d consumer kills; queue stats %+v", len(entries), pops, consumerKills, st)
	require.Greater(t, pops, 100, "the processes did too little for the test to mean anything")
	require.Greater(t, st.HolesSkipped+st.SlotsReclaimed, uint64(0), "no process died inside a claim window")
	require.NoError(t, shmtest.RunChecks(entries, shmtest.AtMostLost(consumerKills), shmtest.InOrderPerProducer()))
}

// requireKilled checks that p died of SIGKILL (ours or its crash point's)
// and not of an error of its own.
func requireKilled(t *testing.T, p *shmtest.Proc) {
	t.Helper()
	require.True(t, p.Killed(), "%v exited by itself: %s", p, p.Output())
}
