package shmqueue

import (
	"context"
	"errors"
	"io/fs"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmkit/shmkit/internal/options"
	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/sync"
)

func TestMain(m *testing.M) { testproc.Main(m) }

var backends = []Backend{BackendFutex, BackendSysV}

// newSpec returns a fresh posix spec removed (with any SysV set) at cleanup.
func newSpec(t testing.TB) string {
	t.Helper()
	spec := "posix:/" + testproc.UniqueName("q")
	t.Cleanup(func() { _ = Remove(spec) })
	return spec
}

func create[T any](t testing.TB, capacity int, opts ...Option) (*Queue[T], string) {
	t.Helper()
	spec := newSpec(t)
	q, err := Create[T](spec, capacity, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	return q, spec
}

func forEachBackend(t *testing.T, f func(t *testing.T, b Backend)) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) { f(t, b) })
	}
}

// TestSeqStoreModes hands items one at a time between two goroutines that
// park for every one (ParkOnly on a two-slot queue), with the slot's
// sequence word ended by a CAS and, where membarrier works, by a light
// release store: every item arrives, in order, and no wake is lost (a
// lost wake costs the 10 ms re-check; the whole run is bounded by its
// context).
func TestSeqStoreModes(t *testing.T) {
	modes := map[string]func() bool{"cas": func() bool { return false }}
	if sync.LightWakes() {
		modes["light"] = sync.LightWakes
	}
	for name, mode := range modes {
		t.Run(name, func(t *testing.T) {
			saved := lightWakes
			lightWakes = mode
			t.Cleanup(func() { lightWakes = saved })
			park := WithWaitPolicy(sync.ParkOnly)
			q, spec := create[uint64](t, 2, park)
			require.Equal(t, mode(), q.b.(*futexQueue[uint64]).light)
			q2, err := Open[uint64](spec, park)
			require.NoError(t, err)
			defer q2.Close()
			const n = 5000
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				for i := range uint64(n) {
					if err := q.Push(ctx, i); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			for i := range uint64(n) {
				v, err := q2.Pop(ctx)
				require.NoError(t, err, "item %d", i)
				require.Equal(t, i, v)
			}
			require.NoError(t, <-done)
		})
	}
}

func TestBasicFIFO(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		q, spec := create[uint64](t, 8, WithBackend(b))
		require.Equal(t, 8, q.Cap())
		require.Equal(t, b, q.Backend())
		ctx := context.Background()
		for i := range 8 {
			require.NoError(t, q.Push(ctx, uint64(i)))
		}
		require.ErrorIs(t, q.TryPush(99), ErrFull)
		require.Equal(t, 8, q.Len())

		// A second handle sees the same queue and the creator's backend.
		q2, err := Open[uint64](spec, WithBackend(BackendFutex+BackendSysV-b))
		require.NoError(t, err)
		defer q2.Close()
		require.Equal(t, b, q2.Backend())
		for i := range 8 {
			v, err := q2.Pop(ctx)
			require.NoError(t, err)
			require.Equal(t, uint64(i), v)
		}
		_, err = q.TryPop()
		require.ErrorIs(t, err, ErrEmpty)
		require.Equal(t, 0, q.Len())

		// Wrap around several times with batches.
		var next, want uint64
		buf := make([]uint64, 5)
		for round := 0; round < 50; round++ {
			vs := []uint64{next, next + 1, next + 2}
			next += 3
			n, err := q.PushBatch(ctx, vs)
			require.NoError(t, err)
			require.Equal(t, 3, n)
			got, err := q2.PopBatch(ctx, buf)
			require.NoError(t, err)
			for _, v := range buf[:got] {
				require.Equal(t, want, v)
				want++
			}
		}
		for want < next {
			v, err := q.TryPop()
			require.NoError(t, err)
			require.Equal(t, want, v)
			want++
		}
		st, err := q.Stats()
		require.NoError(t, err)
		require.Equal(t, b, st.Backend)
		require.Equal(t, 8, st.Cap)
		require.Equal(t, 0, st.Len)
		require.Equal(t, st.Pushes, st.Pops)
		require.Equal(t, uint64(8+150), st.Pushes)
		seg, err := layout.Open(spec, layout.Expect{Kind: layout.KindQueue})
		require.NoError(t, err)
		ist, err := Inspect(seg)
		require.NoError(t, err)
		require.NoError(t, seg.Close())
		require.Equal(t, st, ist, "Inspect sees what Stats sees, without knowing T")
		if b == BackendFutex {
			require.Equal(t, 2, st.Handles)
			require.Zero(t, st.DeadHandles)
		}
	})
}

func TestCloseWrites(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		q, _ := create[uint64](t, 4, WithBackend(b))
		ctx := context.Background()
		require.NoError(t, q.Push(ctx, 1))
		require.NoError(t, q.Push(ctx, 2))

		// Parked consumers on an empty queue all wake with ErrClosed.
		q2, _ := create[uint64](t, 4, WithBackend(b))
		errs := make(chan error, 3)
		for range 3 {
			go func() {
				_, err := q2.Pop(ctx)
				errs <- err
			}()
		}
		waitParked(t, q2, 0, 3)
		require.NoError(t, q2.CloseWrites())
		for range 3 {
			require.ErrorIs(t, <-errs, ErrClosed)
		}

		require.NoError(t, q.CloseWrites())
		require.NoError(t, q.CloseWrites()) // idempotent
		require.ErrorIs(t, q.Push(ctx, 3), ErrClosed)
		require.ErrorIs(t, q.TryPush(3), ErrClosed)
		v, err := q.Pop(ctx)
		require.NoError(t, err)
		require.Equal(t, uint64(1), v)
		v, err = q.TryPop()
		require.NoError(t, err)
		require.Equal(t, uint64(2), v)
		_, err = q.Pop(ctx)
		require.ErrorIs(t, err, ErrClosed)
		_, err = q.TryPop()
		require.ErrorIs(t, err, ErrClosed)
		st, err := q.Stats()
		require.NoError(t, err)
		require.True(t, st.Closed)
	})
}

func TestCloseWritesWakesProducers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		q, _ := create[uint64](t, 2, WithBackend(b))
		ctx := context.Background()
		require.NoError(t, q.Push(ctx, 1))
		require.NoError(t, q.Push(ctx, 2))
		errs := make(chan error, 2)
		for range 2 {
			go func() { errs <- q.Push(ctx, 3) }()
		}
		waitParked(t, q, 2, 0)
		require.NoError(t, q.CloseWrites())
		for range 2 {
			require.ErrorIs(t, <-errs, ErrClosed)
		}
		require.Equal(t, 2, q.Len())
	})
}

// waitParked waits until at least the given numbers of this handle's
// producers and consumers are blocked in a wait and, for each side that has
// any, the shared parked bit says one of them is parked; then it gives the
// rest of them time to finish their spin and yield phases and park too
// (there is no signal for "every waiter is now asleep").
func waitParked(t *testing.T, q *Queue[uint64], producers, consumers int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := q.Stats()
		require.NoError(t, err)
		if q.blocked(false) >= producers && q.blocked(true) >= consumers &&
			(producers == 0 || st.ProducersWaiting) && (consumers == 0 || st.ConsumersWaiting) {
			time.Sleep(5 * time.Millisecond)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiters never parked: %d producers, %d consumers blocked; %+v", q.blocked(false), q.blocked(true), st)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestContextCancel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		q, _ := create[uint64](t, 2, WithBackend(b))

		// Blocked consumers cancelled.
		ctx, cancel := context.WithCancel(context.Background())
		errs := make(chan error, 4)
		for range 4 {
			go func() {
				_, err := q.Pop(ctx)
				errs <- err
			}()
		}
		waitParked(t, q, 0, 4)
		cancel()
		for range 4 {
			require.ErrorIs(t, <-errs, context.Canceled)
		}

		// Blocked producers time out.
		bg := context.Background()
		require.NoError(t, q.Push(bg, 1))
		require.NoError(t, q.Push(bg, 2))
		tctx, tcancel := context.WithTimeout(bg, 30*time.Millisecond)
		defer tcancel()
		for range 3 {
			go func() { errs <- q.Push(tctx, 3) }()
		}
		for range 3 {
			require.ErrorIs(t, <-errs, context.DeadlineExceeded)
		}
		n, err := q.PushBatch(tctx, []uint64{5, 6})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Equal(t, 0, n)

		// Everything is consistent afterwards.
		require.Eventually(t, func() bool {
			return q.blocked(true) == 0 && q.blocked(false) == 0
		}, 5*time.Second, time.Millisecond)
		st, err := q.Stats()
		require.NoError(t, err)
		require.Equal(t, 2, st.Len)
		require.Equal(t, uint64(2), st.Pushes)
		for _, want := range []uint64{1, 2} {
			v, err := q.Pop(bg)
			require.NoError(t, err)
			require.Equal(t, want, v)
		}
		require.NoError(t, q.Push(bg, 7))
		v, err := q.Pop(bg)
		require.NoError(t, err)
		require.Equal(t, uint64(7), v)
		// The cancelled waiters left at most the parked bits set; the
		// notifies of the pops and the push above cleared them.
		st, err = q.Stats()
		require.NoError(t, err)
		require.False(t, st.ProducersWaiting)
		require.False(t, st.ConsumersWaiting)
	})
}

func TestManyGoroutines(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		q, _ := create[uint64](t, 16, WithBackend(b))
		const producers, consumers, per = 4, 4, 5000
		ctx := context.Background()
		var seen [producers * per]atomic.Int32
		done := make(chan error, producers+consumers)
		for p := range producers {
			go func() {
				for i := range per {
					if err := q.Push(ctx, uint64(p*per+i)); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
		}
		for range consumers {
			go func() {
				buf := make([]uint64, 3)
				last := make([]int, producers)
				for i := range last {
					last[i] = -1
				}
				for {
					n, err := q.PopBatch(ctx, buf)
					if errors.Is(err, ErrClosed) {
						done <- nil
						return
					}
					if err != nil {
						done <- err
						return
					}
					for _, v := range buf[:n] {
						p, i := int(v)/per, int(v)%per
						if i <= last[p] {
							done <- errors.New("per-producer order violated")
							return
						}
						last[p] = i
						seen[v].Add(1)
					}
				}
			}()
		}
		for range producers {
			require.NoError(t, <-done)
		}
		require.NoError(t, q.CloseWrites())
		for range consumers {
			require.NoError(t, <-done)
		}
		for i := range seen {
			require.Equal(t, int32(1), seen[i].Load(), "item %d", i)
		}
	})
}

func TestCapacityAndOptions(t *testing.T) {
	q, _ := create[uint64](t, 5)
	require.Equal(t, 8, q.Cap())
	q1, _ := create[uint64](t, 1)
	require.Equal(t, 2, q1.Cap())
	_, err := Create[uint64](newSpec(t), 0)
	require.Error(t, err)
	_, err = Create[uint64](newSpec(t), 1<<15, WithBackend(BackendSysV))
	require.Error(t, err)
	_, err = Create[*int](newSpec(t), 4)
	require.ErrorIs(t, err, ErrUnsupportedType)

	// Open as another type fails.
	_, spec := create[uint64](t, 4)
	_, err = Open[uint32](spec)
	require.ErrorIs(t, err, ErrTypeMismatch)

	// Handles are bounded and released by Close.
	qa, spec := create[uint64](t, 4, WithMaxHandles(2))
	qb, err := Open[uint64](spec)
	require.NoError(t, err)
	_, err = Open[uint64](spec)
	require.ErrorIs(t, err, ErrTooManyHandles)
	require.NoError(t, qb.Close())
	qc, err := Open[uint64](spec)
	require.NoError(t, err)
	require.NoError(t, qc.Close())
	st, err := qa.Stats()
	require.NoError(t, err)
	require.Equal(t, 1, st.Handles)

	// Use after Close, and of a nil handle: ErrClosed from every per-item
	// call, never a panic.
	require.NoError(t, qa.Close())
	var qn *Queue[uint64]
	for _, q := range []*Queue[uint64]{qa, qn} {
		require.ErrorIs(t, q.Push(context.Background(), 1), ErrClosed)
		require.ErrorIs(t, q.TryPush(1), ErrClosed)
		_, err = q.Pop(context.Background())
		require.ErrorIs(t, err, ErrClosed)
		_, err = q.TryPop()
		require.ErrorIs(t, err, ErrClosed)
	}
}

func TestSysVKeyAndRemove(t *testing.T) {
	spec := newSpec(t)
	key := int32(0x5100_0000 | (time.Now().UnixNano() & 0xffffff))
	q, err := Create[uint64](spec, 4, WithBackend(BackendSysV), WithSysVKey(key))
	require.NoError(t, err)
	require.NoError(t, q.Push(context.Background(), 42))
	q2, err := Open[uint64](spec)
	require.NoError(t, err)
	v, err := q2.Pop(context.Background())
	require.NoError(t, err)
	require.Equal(t, uint64(42), v)
	require.NoError(t, q2.Close())
	require.NoError(t, q.Close())
	require.NoError(t, Remove(spec))
	_, err = Open[uint64](spec)
	require.Error(t, err)
}

func TestSysVFtok(t *testing.T) {
	dir := t.TempDir()
	spec := newSpec(t)
	q, err := Create[uint64](spec, 4, WithBackend(BackendSysV), WithSysVFtok(dir, 'q'))
	require.NoError(t, err)
	defer q.Close()
	want, err := sync.Ftok(dir, 'q')
	require.NoError(t, err)
	require.Equal(t, uint64(uint32(want)), q.Segment().Header().Params[paramSemKey])
	// A second queue on the same key collides instead of sharing the set.
	_, err = Create[uint64](newSpec(t), 4, WithBackend(BackendSysV), WithSysVFtok(dir, 'q'))
	require.ErrorIs(t, err, fs.ErrExist)
}

func TestCorruptCursor(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		q, _ := create[uint64](t, 8, WithBackend(b))
		ctx := context.Background()
		require.NoError(t, q.Push(ctx, 1))
		if b == BackendSysV {
			ctl, err := layout.View[sysvControl](q.Segment(), 0)
			require.NoError(t, err)
			ctl.tail.Store(100)
			require.ErrorIs(t, q.Push(ctx, 2), ErrCorrupt)
			_, err = q.Pop(ctx)
			require.ErrorIs(t, err, ErrCorrupt)
			ctl.tail.Store(1)
			ctl.head.Store(2)
			_, err = q.TryPop()
			require.ErrorIs(t, err, ErrCorrupt)
			return
		}
		ctl, err := layout.View[futexControl](q.Segment(), 0)
		require.NoError(t, err)
		slots, err := layout.ViewSlice[slot[uint64]](q.Segment(), 1, 8)
		require.NoError(t, err)

		// An enqueue cursor far beyond the dequeue cursor.
		ctl.enq.Store(1 << 60)
		require.ErrorIs(t, q.Push(ctx, 2), ErrCorrupt)
		v, err := q.TryPop() // position 0 is intact
		require.NoError(t, err)
		require.Equal(t, uint64(1), v)
		_, err = q.TryPop()
		require.ErrorIs(t, err, ErrCorrupt)
		_, err = q.Pop(ctx)
		require.ErrorIs(t, err, ErrCorrupt)
		ctl.enq.Store(1)

		// Garbage sequence numbers at either cursor.
		slots[1].seq.Store(0xdead_beef)
		require.ErrorIs(t, q.Push(ctx, 2), ErrCorrupt)
		_, err = q.TryPop()
		require.ErrorIs(t, err, ErrCorrupt)
		slots[1].seq.Store(1)

		// Dequeue cursor ahead of the enqueue cursor.
		ctl.deq.Store(5)
		_, err = q.TryPop()
		require.ErrorIs(t, err, ErrCorrupt)
		ctl.deq.Store(1)

		// Cursor out of the position range.
		ctl.deq.Store(^uint64(0) >> 1)
		_, err = q.TryPop()
		require.ErrorIs(t, err, ErrCorrupt)
		ctl.deq.Store(1)

		// Garbage the queue can absorb: an enqueue cursor a few positions
		// ahead looks like producers that died after claiming; consumers
		// skip the holes. Odd, but no panic and no hang.
		ctl.enq.Store(4)
		_, err = q.TryPop()
		require.ErrorIs(t, err, ErrEmpty)
		st, err := q.Stats()
		require.NoError(t, err)
		require.Equal(t, uint64(3), st.HolesSkipped)
		require.NoError(t, q.Push(ctx, 9))
		v, err = q.Pop(ctx)
		require.NoError(t, err)
		require.Equal(t, uint64(9), v)
	})
}

func TestHostileLanes(t *testing.T) {
	q, _ := create[uint64](t, 8)
	// A peer fills every lane of this handle's member record.
	fq := q.b.(*futexQueue[uint64])
	for i := range fq.me.lanes {
		fq.me.lanes[i].Store(laneWord(false, 12345, 1))
	}
	start := time.Now()
	require.ErrorIs(t, q.TryPush(1), ErrCorrupt)
	require.Less(t, time.Since(start), 10*time.Second)
	for i := range fq.me.lanes {
		fq.me.lanes[i].Store(0)
	}
	require.NoError(t, q.TryPush(1))
}

// One dialect: every error reads "shmqueue: op spec: cause" and wraps its
// sentinel; capacity errors wrap ErrCapacity; options made for another
// structure are refused; Close is idempotent.
func TestErrorsAndDialect(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		q, spec := create[uint64](t, 2, WithBackend(b))
		require.NoError(t, q.TryPush(1))
		require.NoError(t, q.TryPush(2))
		err := q.TryPush(3)
		require.EqualError(t, err, "shmqueue: push "+spec+": shmkit: full")
		var oe *layout.OpError
		require.ErrorAs(t, err, &oe)
		require.Equal(t, "push", oe.Op)
		require.NoError(t, q.Close())
		require.NoError(t, q.Close(), "a second Close is a no-op")
		_, err = q.TryPop()
		require.EqualError(t, err, "shmqueue: pop "+spec+": "+ErrClosed.Error())
	})
	for _, c := range []struct {
		n    int
		opts []Option
	}{{0, nil}, {-1, nil}, {maxCapacity + 1, nil}, {1 << 15, []Option{WithBackend(BackendSysV)}}, {4, []Option{WithMaxHandles(0)}}} {
		_, err := Create[uint64](newSpec(t), c.n, c.opts...)
		require.ErrorIs(t, err, ErrCapacity, "capacity %d", c.n)
	}
	require.ErrorIs(t, ErrTooManyHandles, ErrCapacity)
	ringOnly := options.New("shmring", "WithSomething", func(*options.Config) {})
	_, err := Create[uint64](newSpec(t), 2, ringOnly)
	require.ErrorContains(t, err, "option shmring.WithSomething is for shmring, not shmqueue")
}

// The per-item calls allocate nothing (a one-element slice handed through
// the backend interface used to escape: 2 allocations per Push and Pop).
func TestPerItemNoAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	forEachBackend(t, func(t *testing.T, b Backend) {
		q, _ := create[[8]uint64](t, 64, WithBackend(b))
		ctx := context.Background()
		var v [8]uint64
		allocs := testing.AllocsPerRun(200, func() {
			v[0]++
			if err := q.Push(ctx, v); err != nil {
				t.Fatal(err)
			}
			if _, err := q.Pop(ctx); err != nil {
				t.Fatal(err)
			}
			if err := q.TryPush(v); err != nil {
				t.Fatal(err)
			}
			if _, err := q.TryPop(); err != nil {
				t.Fatal(err)
			}
		})
		require.Zero(t, allocs, "allocations per Push+Pop+TryPush+TryPop")
	})
}
