package shmbus

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/options"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	shmsync "github.com/shmkit/shmkit/sync"
	"github.com/stretchr/testify/require"
)

func testBus(t *testing.T, capacity int, opts ...Option) (*Bus[msg], string) {
	t.Helper()
	spec := posixSpec(t)
	b, err := Create[msg](spec, capacity, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b, spec
}

func TestPublishSubscribeBothPolicies(t *testing.T) {
	for _, o := range []Overflow{Block, Overwrite} {
		t.Run(o.String(), func(t *testing.T) {
			b, _ := testBus(t, 8, WithOverflow(o))
			ctx := context.Background()
			require.NoError(t, b.Publish(ctx, makeMsg(100))) // before anyone joined
			s1, err := b.Subscribe()
			require.NoError(t, err)
			s2, err := b.Subscribe(FromOldest())
			require.NoError(t, err)
			_, err = s1.TryNext()
			require.ErrorIs(t, err, ErrEmpty)
			for i := range uint64(5) {
				require.NoError(t, b.Publish(ctx, makeMsg(i)))
			}
			v, err := s2.Next(ctx)
			require.NoError(t, err)
			require.Equal(t, uint64(100), v.Seq, "FromOldest sees the message before it joined")
			for i := range uint64(5) {
				v, err := s1.Next(ctx)
				require.NoError(t, err)
				require.Equal(t, i, v.Seq)
			}
			buf := make([]msg, 10)
			n, err := s2.NextBatch(ctx, buf)
			require.NoError(t, err)
			require.Equal(t, 5, n)
			for i := range n {
				require.Equal(t, uint64(i), buf[i].Seq)
			}
			st, err := b.Stats()
			require.NoError(t, err)
			require.Equal(t, uint64(6), st.Published)
			require.Len(t, st.Subscribers, 2)
			for _, ss := range st.Subscribers {
				require.True(t, ss.Alive)
				require.Zero(t, ss.Lag)
				require.Equal(t, uint64(6), ss.Cursor)
			}
			require.NoError(t, b.CloseWrites())
			_, err = s1.Next(ctx)
			require.ErrorIs(t, err, ErrClosed)
			require.ErrorIs(t, b.Publish(ctx, makeMsg(9)), ErrClosed)
		})
	}
}

func TestCloseWritesDrains(t *testing.T) {
	b, _ := testBus(t, 16)
	s, err := b.Subscribe()
	require.NoError(t, err)
	ctx := context.Background()
	for i := range uint64(10) {
		require.NoError(t, b.Publish(ctx, makeMsg(i)))
	}
	require.NoError(t, b.CloseWrites())
	for i := range uint64(10) {
		v, err := s.Next(ctx)
		require.NoError(t, err)
		require.Equal(t, i, v.Seq)
	}
	_, err = s.Next(ctx)
	require.ErrorIs(t, err, ErrClosed)
	_, err = s.TryNext()
	require.ErrorIs(t, err, ErrClosed)
}

func TestBlockWaitsForSlowestAndCloseReleases(t *testing.T) {
	b, _ := testBus(t, 4)
	fast, err := b.Subscribe()
	require.NoError(t, err)
	slow, err := b.Subscribe()
	require.NoError(t, err)
	ctx := context.Background()
	for i := range uint64(4) {
		require.NoError(t, b.TryPublish(makeMsg(i)))
		_, err := fast.Next(ctx)
		require.NoError(t, err)
	}
	require.ErrorIs(t, b.TryPublish(makeMsg(4)), ErrFull)
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, b.Publish(tctx, makeMsg(4)), context.DeadlineExceeded)

	// The slow one reads one: room for exactly one more.
	v, err := slow.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(0), v.Seq)
	require.NoError(t, b.TryPublish(makeMsg(4)))
	require.ErrorIs(t, b.TryPublish(makeMsg(5)), ErrFull)

	// A publisher blocked on the slow subscriber is released by its Close.
	done := make(chan error, 1)
	go func() { done <- b.Publish(ctx, makeMsg(5)) }()
	time.Sleep(10 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Publish returned %v while the slow subscriber is a capacity behind", err)
	default:
	}
	require.NoError(t, slow.Close())
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Publish still blocked after the slow subscriber closed")
	}
	require.NoError(t, slow.Close(), "Close twice")
}

func TestBlockNoSubscribersNeverWaits(t *testing.T) {
	b, _ := testBus(t, 4)
	for i := range uint64(100) {
		require.NoError(t, b.TryPublish(makeMsg(i)))
	}
	// A joiner is not lapped: the publisher re-reads the table.
	s, err := b.Subscribe()
	require.NoError(t, err)
	for i := range uint64(4) {
		require.NoError(t, b.TryPublish(makeMsg(100+i)))
	}
	require.ErrorIs(t, b.TryPublish(makeMsg(104)), ErrFull)
	v, err := s.TryNext()
	require.NoError(t, err)
	require.Equal(t, uint64(100), v.Seq)
}

func TestOverwriteLaggedAccounting(t *testing.T) {
	b, _ := testBus(t, 8, WithOverflow(Overwrite))
	s, err := b.Subscribe()
	require.NoError(t, err)
	ctx := context.Background()
	const total = 100
	for i := range uint64(total) {
		require.NoError(t, b.TryPublish(makeMsg(i)))
	}
	var got, missed uint64
	next := uint64(0)
	for {
		v, err := s.TryNext()
		if errors.Is(err, ErrEmpty) {
			break
		}
		var le *LaggedError
		if errors.As(err, &le) {
			require.ErrorIs(t, err, ErrLagged)
			missed += le.Missed
			next += le.Missed
			continue
		}
		require.NoError(t, err)
		seq, err := v.check()
		require.NoError(t, err)
		require.Equal(t, next, seq)
		next++
		got++
	}
	require.Equal(t, uint64(total), got+missed)
	require.Equal(t, uint64(total-7), missed, "continues from the oldest retained")
	st, err := b.Stats()
	require.NoError(t, err)
	require.Equal(t, uint64(1), st.Subscribers[0].Lapped)
	require.Equal(t, missed, st.Subscribers[0].Missed)
	_ = ctx
	_, err = s.Peek(1)
	require.ErrorIs(t, err, ErrUsage)
}

func TestPeekRelease(t *testing.T) {
	b, _ := testBus(t, 8)
	s, err := b.Subscribe()
	require.NoError(t, err)
	ctx := context.Background()
	for i := range uint64(6) {
		require.NoError(t, b.Publish(ctx, makeMsg(i)))
	}
	p, err := s.Peek(4)
	require.NoError(t, err)
	require.Len(t, p, 4)
	require.Equal(t, uint64(0), p[0].Seq)
	require.ErrorIs(t, s.Release(5), ErrUsage)
	require.NoError(t, s.Release(3))
	p, err = s.PeekWait(ctx, 10)
	require.NoError(t, err)
	require.Len(t, p, 3)
	require.Equal(t, uint64(3), p[0].Seq)
	require.NoError(t, s.Release(3))
	p, err = s.Peek(1)
	require.NoError(t, err)
	require.Empty(t, p)
}

func TestDurableResume(t *testing.T) {
	b, spec := testBus(t, 8)
	ctx := context.Background()
	d, err := b.Subscribe(Durable("audit"))
	require.NoError(t, err)
	require.Equal(t, "audit", d.Name())
	_, err = b.Subscribe(Durable("audit"))
	require.ErrorIs(t, err, ErrRoleTaken, "one holder per name")
	for i := range uint64(5) {
		require.NoError(t, b.Publish(ctx, makeMsg(i)))
	}
	for range 2 {
		_, err := d.Next(ctx)
		require.NoError(t, err)
	}
	require.NoError(t, d.Close())
	// Closed durable subscribers do not hold the publisher back.
	for i := range uint64(20) {
		require.NoError(t, b.TryPublish(makeMsg(5+i)))
	}
	b2, err := Open[msg](spec)
	require.NoError(t, err)
	defer b2.Close()
	d2, err := b2.Subscribe(Durable("audit"))
	require.NoError(t, err)
	_, err = d2.Next(ctx)
	var le *LaggedError
	require.ErrorAs(t, err, &le)
	// Cursor was 2; tail 25; oldest safe is 25-8+1 = 18.
	require.Equal(t, uint64(16), le.Missed)
	v, err := d2.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(18), v.Seq)
	st, err := b2.Stats()
	require.NoError(t, err)
	require.Len(t, st.Subscribers, 1)
	require.Equal(t, "audit", st.Subscribers[0].Name)
	require.True(t, st.Subscribers[0].Durable)
	require.Equal(t, uint64(1), st.Subscribers[0].Lapped)

	// Resume without a lap: exact continuation.
	require.NoError(t, d2.Close())
	require.NoError(t, b.Publish(ctx, makeMsg(25)))
	d3, err := b2.Subscribe(Durable("audit"))
	require.NoError(t, err)
	v, err = d3.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(19), v.Seq)
}

func TestPublisherRole(t *testing.T) {
	b, spec := testBus(t, 8)
	require.NoError(t, b.Publish(context.Background(), makeMsg(0)))
	b2, err := Open[msg](spec)
	require.NoError(t, err)
	defer b2.Close()
	err = b2.Publish(context.Background(), makeMsg(1))
	require.ErrorIs(t, err, ErrRoleTaken)
	require.NoError(t, b.Close())
	require.NoError(t, b2.Publish(context.Background(), makeMsg(1)), "released by Close")
	require.Equal(t, uint64(2), b2.Published())
}

func TestCreateOpenErrors(t *testing.T) {
	spec := posixSpec(t)
	_, err := Create[msg](spec, 0)
	require.ErrorIs(t, err, ErrCapacity)
	_, err = Create[msg](spec, 8, WithMaxSubscribers(0))
	require.ErrorIs(t, err, ErrCapacity)
	_, err = Create[*int](spec, 8)
	require.ErrorIs(t, err, ErrUnsupportedType)
	_, err = Create[msg](spec, 8, options.New("shmring", "X", func(*options.Config) {}))
	require.Error(t, err)
	b, err := Create[msg](spec, 8, WithOverflow(Overwrite), WithMaxSubscribers(3))
	require.NoError(t, err)
	defer b.Close()
	_, err = Open[uint64](spec)
	require.ErrorIs(t, err, ErrTypeMismatch)
	_, err = Open[msg](spec, WithOverflow(Block))
	require.ErrorIs(t, err, ErrTypeMismatch)
	b2, err := Open[msg](spec, WithOverflow(Overwrite), WithMaxSubscribers(3))
	require.NoError(t, err)
	require.NoError(t, b2.Close())
	require.NoError(t, b2.Close())
	for range 3 {
		_, err := b.Subscribe()
		require.NoError(t, err)
	}
	_, err = b.Subscribe()
	require.ErrorIs(t, err, ErrCapacity)
	_, err = b.Subscribe(Durable(string(make([]byte, MaxNameLen+1))))
	require.ErrorIs(t, err, ErrCapacity)
	require.NoError(t, b.Close())
	_, err = b.Subscribe()
	require.ErrorIs(t, err, ErrClosed)
	_, err = b.Stats()
	require.ErrorIs(t, err, ErrClosed)
}

func TestInspectAndRelease(t *testing.T) {
	b, spec := testBus(t, 8)
	_, err := b.Subscribe(Durable("keep"))
	require.NoError(t, err)
	s, err := layout.Open(spec, layout.Expect{Kind: layout.KindAny}, layout.WithSegment(segment.ReadOnly()))
	require.NoError(t, err)
	defer s.Close()
	st, err := Inspect(s)
	require.NoError(t, err)
	require.Equal(t, layout.KindBus, st.Kind)
	require.Len(t, st.Subscribers, 1)
	require.Equal(t, "keep", st.Subscribers[0].Name)
	w, err := layout.Open(spec, layout.Expect{Kind: layout.KindAny})
	require.NoError(t, err)
	defer w.Close()
	rel, err := ReleaseDeadSubscribers(w)
	require.NoError(t, err)
	require.Empty(t, rel, "nothing dead")
	require.ErrorIs(t, RemoveSubscriber(w, "keep"), ErrRoleTaken)
}

func TestWaitSet(t *testing.T) {
	b, _ := testBus(t, 8)
	s1, err := b.Subscribe()
	require.NoError(t, err)
	s2, err := b.Subscribe()
	require.NoError(t, err)
	var _ shmsync.Waitable = s1
	_, _ = s2.TryNext()
	ws, err := shmsync.NewWaitSet(s1)
	require.NoError(t, err)
	defer ws.Close()
	pub := make(chan error, 1)
	go func() {
		time.Sleep(5 * time.Millisecond)
		pub <- b.Publish(context.Background(), makeMsg(0))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	i, err := ws.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, 0, i)
	require.NoError(t, <-pub)
}

func TestNoAllocs(t *testing.T) {
	for _, o := range []Overflow{Block, Overwrite} {
		b, _ := testBus(t, 64, WithOverflow(o))
		s, err := b.Subscribe()
		require.NoError(t, err)
		ctx := context.Background()
		v := makeMsg(1)
		allocs := testing.AllocsPerRun(1000, func() {
			if err := b.Publish(ctx, v); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Next(ctx); err != nil {
				t.Fatal(err)
			}
		})
		require.Zero(t, allocs, "%s: Publish+Next", o)
	}
}
