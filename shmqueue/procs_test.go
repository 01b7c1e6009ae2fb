package shmqueue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/internal/testproc"
)

func soak() bool { return os.Getenv("SHMKIT_SOAK") == "1" }

// childArgs are the arguments of the producer and consumer children.
type childArgs struct {
	queue, ledger string
	inc           uint64 // incarnation: unique per started child
	count         int    // producer: items to push (-1: until the stop flag)
	slot          int    // progress counter index, -1 for none
	batch         int    // > 1: PushBatch / PopBatch with this many items
	pace          bool   // push/pop in random bursts with pauses
	recordPushes  bool
}

func (a childArgs) strings() []string {
	return []string{a.queue, a.ledger, strconv.FormatUint(a.inc, 10), strconv.Itoa(a.count), strconv.Itoa(a.slot),
		strconv.Itoa(a.batch), strconv.FormatBool(a.pace), strconv.FormatBool(a.recordPushes)}
}

func parseChildArgs(s []string) (childArgs, error) {
	if len(s) != 8 {
		return childArgs{}, fmt.Errorf("want 8 args, got %q", s)
	}
	a := childArgs{queue: s[0], ledger: s[1]}
	var err error
	if a.inc, err = strconv.ParseUint(s[2], 10, 64); err != nil {
		return a, err
	}
	if a.count, err = strconv.Atoi(s[3]); err != nil {
		return a, err
	}
	if a.slot, err = strconv.Atoi(s[4]); err != nil {
		return a, err
	}
	if a.batch, err = strconv.Atoi(s[5]); err != nil {
		return a, err
	}
	if a.pace, err = strconv.ParseBool(s[6]); err != nil {
		return a, err
	}
	a.recordPushes, err = strconv.ParseBool(s[7])
	return a, err
}

// pacer makes a child work in random bursts separated by short pauses, so
// the queue goes through full, empty and in-between states.
type pacer struct {
	on   bool
	rng  *rand.Rand
	left int
}

func (p *pacer) tick() {
	if !p.on {
		return
	}
	if p.left--; p.left > 0 {
		return
	}
	p.left = 1 + p.rng.IntN(300)
	time.Sleep(time.Duration(p.rng.IntN(2000)) * time.Microsecond)
}

var producerChild = testproc.Register("shmqueue-producer", func(args []string) error {
	a, err := parseChildArgs(args)
	if err != nil {
		return err
	}
	q, err := Open[uint64](a.queue)
	if err != nil {
		return err
	}
	defer q.Close()
	l, err := openLedger(a.ledger)
	if err != nil {
		return err
	}
	ctx := context.Background()
	pc := pacer{on: a.pace, rng: rand.New(rand.NewPCG(a.inc, 1))}
	buf := make([]uint64, max(a.batch, 1))
	for seq := uint64(0); a.count < 0 || seq < uint64(a.count); {
		if l.stop.Load() != 0 {
			return nil
		}
		n := 1
		if a.batch > 1 {
			n = a.batch
			if a.count >= 0 {
				n = min(n, a.count-int(seq))
			}
			for i := range n {
				buf[i] = mkItem(a.inc, seq+uint64(i))
			}
			_, err = q.PushBatch(ctx, buf[:n])
		} else {
			err = q.Push(ctx, mkItem(a.inc, seq))
		}
		if errors.Is(err, ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		for i := range n {
			if a.recordPushes {
				if err := l.record(kindPush, a.inc, mkItem(a.inc, seq+uint64(i))); err != nil {
					return err
				}
			}
		}
		seq += uint64(n)
		if a.slot >= 0 {
			l.progress[a.slot].Add(1)
		}
		pc.tick()
	}
	return nil
})

var consumerChild = testproc.Register("shmqueue-consumer", func(args []string) error {
	a, err := parseChildArgs(args)
	if err != nil {
		return err
	}
	q, err := Open[uint64](a.queue)
	if err != nil {
		return err
	}
	defer q.Close()
	l, err := openLedger(a.ledger)
	if err != nil {
		return err
	}
	ctx := context.Background()
	pc := pacer{on: a.pace, rng: rand.New(rand.NewPCG(a.inc, 2))}
	buf := make([]uint64, max(a.batch, 1))
	for {
		n := 1
		if a.batch > 1 {
			n, err = q.PopBatch(ctx, buf)
		} else {
			buf[0], err = q.Pop(ctx)
		}
		if errors.Is(err, ErrClosed) {
			return l.record(kindClosed, a.inc, 0)
		}
		if err != nil {
			return err
		}
		for _, v := range buf[:n] {
			if err := l.record(kindPop, a.inc, v); err != nil {
				return err
			}
		}
		if a.slot >= 0 {
			l.progress[a.slot].Add(1)
		}
		pc.tick()
	}
})

// checkDelivery verifies a ledger: no item popped twice, items of one
// producer incarnation popped by one consumer incarnation in push order,
// and returns the popped set per item.
func checkDelivery(t *testing.T, ents []entry) map[uint64]uint64 {
	t.Helper()
	popped := map[uint64]uint64{}  // item -> consumer incarnation
	last := map[[2]uint64]uint64{} // (consumer, producer) -> last seq + 1
	for _, e := range ents {
		if e.kind != kindPop {
			continue
		}
		if c, dup := popped[e.item]; dup {
			t.Fatalf("item %#x delivered twice (consumers %d and %d)", e.item, c, e.who)
		}
		popped[e.item] = e.who
		k := [2]uint64{e.who, itemInc(e.item)}
		if s := itemSeq(e.item); s+1 <= last[k] {
			t.Fatalf("consumer %d got item %d of producer %d after item %d", e.who, s, itemInc(e.item), last[k]-1)
		}
		last[k] = itemSeq(e.item) + 1
	}
	return popped
}

func TestCrossProcessExactlyOnce(t *testing.T) {
	total := 200_000
	if testing.Short() {
		total = 40_000
	}
	if soak() {
		total = 1_000_000
	}
	for _, tc := range []struct {
		name  string
		b     Backend
		batch int
		n     int
	}{
		{"futex", BackendFutex, 1, total},
		{"futex-batch", BackendFutex, 16, total / 2},
		{"sysv", BackendSysV, 1, total / 4},
		{"sysv-batch", BackendSysV, 16, total / 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if soak() {
				tc.n = total
			}
			const producers, consumers = 4, 4
			q, spec := create[uint64](t, 256, WithBackend(tc.b))
			lspec, l := createLedger(t, tc.n+consumers+16)
			start := time.Now()
			var cons, prods []*testproc.Proc
			for i := range consumers {
				cons = append(cons, consumerChild.Start(t, childArgs{queue: spec, ledger: lspec, inc: uint64(100 + i), slot: -1, batch: tc.batch}.strings()...))
			}
			for i := range producers {
				prods = append(prods, producerChild.Start(t, childArgs{queue: spec, ledger: lspec, inc: uint64(1 + i), count: tc.n / producers, slot: -1, batch: tc.batch}.strings()...))
			}
			for _, p := range prods {
				require.NoError(t, p.Wait(3*time.Minute), p.Output())
			}
			require.NoError(t, q.CloseWrites())
			for _, p := range cons {
				require.NoError(t, p.Wait(time.Minute), p.Output())
			}
			elapsed := time.Since(start)
			ents := l.entries()
			popped := checkDelivery(t, ents)
			require.Len(t, popped, tc.n/producers*producers)
			for p := range producers {
				for s := range tc.n / producers {
					if _, ok := popped[mkItem(uint64(1+p), uint64(s))]; !ok {
						t.Fatalf("item %d of producer %d never delivered", s, p)
					}
				}
			}
			closed := 0
			for _, e := range ents {
				if e.kind == kindClosed {
					closed++
				}
			}
			require.Equal(t, consumers, closed, "every consumer ends with ErrClosed")
			st, err := q.Stats()
			require.NoError(t, err)
			require.Equal(t, 0, st.Len)
			require.Zero(t, st.HolesSkipped)
			t.Logf("%d items, 4P/4C, %v (%.2f M items/s incl. start-up)", tc.n, elapsed, float64(tc.n)/elapsed.Seconds()/1e6)
		})
	}
}

// Crash windows hit deterministically with crash points.

func armed(t *testing.T, child testproc.Child, point string, nth int, a childArgs) *testproc.Proc {
	t.Helper()
	cmd := child.Command(t, a.strings()...)
	cmd.Env = append(cmd.Env, crashpoint.Arm(point, nth))
	return testproc.StartCmd(t, cmd)
}

func requireKilled(t *testing.T, p *testproc.Proc) {
	t.Helper()
	err := p.Wait(time.Minute)
	var ee interface{ Sys() any }
	require.ErrorAs(t, err, &ee, p.Output())
	ws, ok := ee.Sys().(syscall.WaitStatus)
	require.True(t, ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL, "child not SIGKILLed: %v\n%s", err, p.Output())
}

func popN(t *testing.T, q *Queue[uint64], n int) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []uint64
	for range n {
		v, err := q.Pop(ctx)
		require.NoError(t, err)
		out = append(out, v)
	}
	return out
}

func TestProducerDiesAfterClaim(t *testing.T) {
	q, spec := create[uint64](t, 8)
	lspec, _ := createLedger(t, 64)
	// The 5th push dies after its claim CAS, before publishing: a hole.
	p := armed(t, producerChild, "shmqueue.push-claimed", 5, childArgs{queue: spec, ledger: lspec, inc: 1, count: 10, slot: -1})
	requireKilled(t, p)
	require.Equal(t, []uint64{mkItem(1, 0), mkItem(1, 1), mkItem(1, 2), mkItem(1, 3)}, popN(t, q, 4))
	require.NoError(t, q.Push(context.Background(), 77))
	require.Equal(t, []uint64{77}, popN(t, q, 1), "the hole is skipped")
	st, err := q.Stats()
	require.NoError(t, err)
	require.Equal(t, uint64(1), st.HolesSkipped)
	require.Equal(t, 0, st.Len)

	// TryPop repairs too (no waiting involved).
	p = armed(t, producerChild, "shmqueue.push-claimed", 1, childArgs{queue: spec, ledger: lspec, inc: 2, count: 10, slot: -1})
	requireKilled(t, p)
	_, err = q.TryPop()
	require.ErrorIs(t, err, ErrEmpty)
	st, err = q.Stats()
	require.NoError(t, err)
	require.Equal(t, uint64(2), st.HolesSkipped)
}

func TestProducerDiesBeforeClaim(t *testing.T) {
	q, spec := create[uint64](t, 8)
	lspec, _ := createLedger(t, 64)
	p := armed(t, producerChild, "shmqueue.push-announced", 3, childArgs{queue: spec, ledger: lspec, inc: 1, count: 10, slot: -1})
	requireKilled(t, p)
	require.NoError(t, q.Push(context.Background(), 77))
	require.Equal(t, []uint64{mkItem(1, 0), mkItem(1, 1), 77}, popN(t, q, 3))
	st, err := q.Stats()
	require.NoError(t, err)
	require.Zero(t, st.HolesSkipped)
}

func TestProducerDiesAfterPublish(t *testing.T) {
	q, spec := create[uint64](t, 8)
	lspec, _ := createLedger(t, 64)
	// Published but the lane is still announced: the item is delivered.
	p := armed(t, producerChild, "shmqueue.push-published-first", 2, childArgs{queue: spec, ledger: lspec, inc: 1, count: 10, slot: -1})
	requireKilled(t, p)
	require.Equal(t, []uint64{mkItem(1, 0), mkItem(1, 1)}, popN(t, q, 2))
	_, err := q.TryPop()
	require.ErrorIs(t, err, ErrEmpty)
}

func TestConsumerDiesAfterClaim(t *testing.T) {
	q, spec := create[uint64](t, 4)
	lspec, l := createLedger(t, 64)
	ctx := context.Background()
	for i := range 4 {
		require.NoError(t, q.Push(ctx, uint64(i)))
	}
	// The 2nd pop dies between its claim and releasing the slot.
	p := armed(t, consumerChild, "shmqueue.pop-claimed", 2, childArgs{queue: spec, ledger: lspec, inc: 9, slot: -1})
	requireKilled(t, p)
	ents := l.entries()
	require.Len(t, ents, 1)
	require.Equal(t, uint64(0), ents[0].item)
	require.Equal(t, []uint64{2, 3}, popN(t, q, 2), "item 1 died with its consumer")
	// Wrapping onto the dead consumer's slot needs the repair.
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for i := 4; i < 8; i++ {
		require.NoError(t, q.Push(pctx, uint64(i)))
	}
	require.Equal(t, []uint64{4, 5, 6, 7}, popN(t, q, 4))
	st, err := q.Stats()
	require.NoError(t, err)
	require.Equal(t, uint64(1), st.SlotsReclaimed)
}

func TestConsumerDiesMidBatch(t *testing.T) {
	q, spec := create[uint64](t, 8)
	lspec, l := createLedger(t, 64)
	ctx := context.Background()
	for i := range 8 {
		require.NoError(t, q.Push(ctx, uint64(i)))
	}
	// A PopBatch of 4 claims positions 0..3, releases 0 and dies: the
	// items of the claim are lost, slots 1..3 are reclaimed by producers.
	p := armed(t, consumerChild, "shmqueue.pop-released-first", 1, childArgs{queue: spec, ledger: lspec, inc: 9, slot: -1, batch: 4})
	requireKilled(t, p)
	require.Empty(t, l.entries())
	require.Equal(t, []uint64{4, 5, 6, 7}, popN(t, q, 4))
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := q.PushBatch(pctx, []uint64{10, 11, 12, 13, 14, 15, 16, 17})
	require.NoError(t, err)
	require.Equal(t, 8, n)
	require.Equal(t, []uint64{10, 11, 12, 13, 14, 15, 16, 17}, popN(t, q, 8))
	st, err := q.Stats()
	require.NoError(t, err)
	require.Equal(t, uint64(3), st.SlotsReclaimed)
}

func TestSysVHolderDies(t *testing.T) {
	t.Run("producer-after-commit", func(t *testing.T) {
		q, spec := create[uint64](t, 4, WithBackend(BackendSysV))
		lspec, _ := createLedger(t, 64)
		p := armed(t, producerChild, "shmqueue.sysv-push-committed", 3, childArgs{queue: spec, ledger: lspec, inc: 1, count: 10, slot: -1})
		requireKilled(t, p)
		// The third item was committed: it is delivered.
		require.Equal(t, []uint64{mkItem(1, 0), mkItem(1, 1), mkItem(1, 2)}, popN(t, q, 3))
		_, err := q.TryPop()
		require.ErrorIs(t, err, ErrEmpty)
		st, err := q.Stats()
		require.NoError(t, err)
		require.Equal(t, uint64(1), st.Repairs)
		for i := range 4 {
			require.NoError(t, q.TryPush(uint64(i)), "full capacity is back")
		}
		require.ErrorIs(t, q.TryPush(9), ErrFull)
	})
	t.Run("consumer-after-commit", func(t *testing.T) {
		q, spec := create[uint64](t, 4, WithBackend(BackendSysV))
		lspec, _ := createLedger(t, 64)
		for i := range 4 {
			require.NoError(t, q.TryPush(uint64(i)))
		}
		p := armed(t, consumerChild, "shmqueue.sysv-pop-committed", 1, childArgs{queue: spec, ledger: lspec, inc: 9, slot: -1})
		requireKilled(t, p)
		require.Equal(t, []uint64{1, 2, 3}, popN(t, q, 3), "item 0 died with its consumer")
		for i := range 4 {
			require.NoError(t, q.TryPush(uint64(10+i)), "the dead consumer's slot is back")
		}
		st, err := q.Stats()
		require.NoError(t, err)
		require.Equal(t, uint64(1), st.Repairs)
	})
	t.Run("repairer-dies", func(t *testing.T) {
		q, spec := create[uint64](t, 4, WithBackend(BackendSysV))
		lspec, _ := createLedger(t, 64)
		p := armed(t, producerChild, "shmqueue.sysv-push-committed", 1, childArgs{queue: spec, ledger: lspec, inc: 1, count: 10, slot: -1})
		requireKilled(t, p)
		// The next producer repairs and dies in the middle of the repair.
		p = armed(t, producerChild, "shmqueue.sysv-reconcile", 1, childArgs{queue: spec, ledger: lspec, inc: 2, count: 10, slot: -1})
		requireKilled(t, p)
		require.Equal(t, []uint64{mkItem(1, 0)}, popN(t, q, 1))
		_, err := q.TryPop()
		require.ErrorIs(t, err, ErrEmpty)
	})
}

func TestFileSegment(t *testing.T) {
	spec := "file:" + filepath.Join(t.TempDir(), "q")
	q, err := Create[uint64](spec, 16)
	require.NoError(t, err)
	defer q.Close()
	lspec, _ := createLedger(t, 64)
	p := producerChild.Start(t, childArgs{queue: spec, ledger: lspec, inc: 3, count: 10, slot: -1}.strings()...)
	require.NoError(t, p.Wait(time.Minute), p.Output())
	got := popN(t, q, 10)
	for i, v := range got {
		require.Equal(t, mkItem(3, uint64(i)), v)
	}
}
