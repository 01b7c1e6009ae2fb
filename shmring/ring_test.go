package shmring

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shmkit/shmkit/layout"
	shmsync "github.com/shmkit/shmkit/sync"
	"github.com/stretchr/testify/require"
)

func TestCreateCapacityErrors(t *testing.T) {
	for _, c := range []int{0, -1, -8, 1<<40 + 1} {
		_, err := Create[item8](posixSpec(t), c)
		require.ErrorIs(t, err, ErrCapacity, "capacity %d", c)
	}
	// Every capacity is rounded up to a power of two (layout.RoundCapacity).
	for c, want := range map[int]int{3: 4, 6: 8, 1000: 1024, 1: 1} {
		r, err := Create[item8](posixSpec(t), c)
		require.NoError(t, err, "capacity %d", c)
		require.Equal(t, want, r.Cap(), "capacity %d", c)
		require.NoError(t, r.Close())
	}
	br, err := CreateBytes(posixSpec(t), 100)
	require.NoError(t, err)
	require.Equal(t, 128, br.Cap())
	require.NoError(t, br.Close())
	// Too large for the 64 TiB slot limit: 2^40 slots of 1 KiB.
	_, err = Create[item1k](posixSpec(t), 1<<40)
	require.ErrorIs(t, err, ErrCapacity)
	require.ErrorContains(t, err, "64 TiB")
	for _, c := range []int{0, 32, -64} {
		_, err := CreateBytes(posixSpec(t), c)
		require.ErrorIs(t, err, ErrCapacity, "byte capacity %d", c)
	}
	// Capacity 1 is a valid (if slow) ring.
	r, err := Create[item8](posixSpec(t), 1)
	require.NoError(t, err)
	require.NoError(t, r.Close())
}

func TestUnsupportedAndMismatch(t *testing.T) {
	_, err := Create[*int](posixSpec(t), 8)
	require.ErrorIs(t, err, ErrUnsupportedType)
	_, err = Create[struct{ S string }](posixSpec(t), 8)
	require.ErrorIs(t, err, ErrUnsupportedType)

	spec := posixSpec(t)
	r, err := Create[item8](spec, 8)
	require.NoError(t, err)
	defer r.Close()
	_, err = Open[item64](spec)
	require.ErrorIs(t, err, ErrTypeMismatch)
	_, err = OpenBytes(spec)
	require.ErrorIs(t, err, ErrTypeMismatch)
	r2, err := Open[item8](spec)
	require.NoError(t, err)
	require.Equal(t, 8, r2.Cap())
	require.NoError(t, r2.Close())
}

func TestBasicPushPop(t *testing.T) {
	ctx := context.Background()
	spec := posixSpec(t)
	r, err := Create[item64](spec, 4)
	require.NoError(t, err)
	defer r.Close()
	require.Equal(t, 4, r.Cap())
	require.Equal(t, 0, r.Len())
	_, ok := r.TryPop()
	require.False(t, ok)
	for i := range 4 {
		require.True(t, r.TryPush(makeItem[item64](uint64(i))))
	}
	require.False(t, r.TryPush(makeItem[item64](99)), "full")
	require.Equal(t, 4, r.Len())
	for i := range 4 {
		v, err := r.Pop(ctx)
		require.NoError(t, err)
		seq, err := checkItem(&v)
		require.NoError(t, err)
		require.Equal(t, uint64(i), seq)
	}
	// Blocking pop times out on an empty ring.
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err = r.Pop(cctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	st := statsOf(t, r)
	require.Equal(t, uint64(4), st.Head)
	require.Equal(t, uint64(4), st.Tail)
	require.Equal(t, int32(os.Getpid()), st.Producer.PID)
	require.True(t, st.Producer.Alive)
	require.Equal(t, int32(os.Getpid()), st.Consumer.PID)

	require.NoError(t, r.Close())
	require.NoError(t, r.Close())
	require.ErrorIs(t, r.Push(ctx, item64{}), ErrClosed)
	_, err = r.Pop(ctx)
	require.ErrorIs(t, err, ErrClosed)
	require.False(t, r.TryPush(item64{}))
}

// TestBlockingWake checks each wait policy wakes on the other side's
// progress, in both directions, between two goroutines.
func TestBlockingWake(t *testing.T) {
	for _, pol := range []shmsync.WaitPolicy{shmsync.SpinThenPark, shmsync.SpinOnly, shmsync.ParkOnly} {
		t.Run(pol.String(), func(t *testing.T) {
			spec := posixSpec(t)
			r, err := Create[item8](spec, 2, WithWaitPolicy(pol))
			require.NoError(t, err)
			defer r.Close()
			ctx := timeoutCtx(t, 20*time.Second)
			const n = 5000
			errc := make(chan error, 1)
			go func() {
				for i := range n {
					if err := r.Push(ctx, item8{uint64(i)}); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			for i := range n {
				v, err := r.Pop(ctx)
				require.NoError(t, err)
				require.Equal(t, uint64(i), v.Seq)
				if i%1000 == 0 {
					time.Sleep(time.Millisecond) // let the producer park on a full ring
				}
			}
			require.NoError(t, <-errc)
		})
	}
}

func TestClaimPublishWrap(t *testing.T) {
	r, err := Create[item8](posixSpec(t), 8)
	require.NoError(t, err)
	defer r.Close()
	s, err := r.Claim(5)
	require.NoError(t, err)
	require.Len(t, s, 5)
	for i := range s {
		s[i].Seq = uint64(i)
	}
	require.ErrorIs(t, r.Publish(6), ErrUsage)
	require.NoError(t, r.Publish(5))
	require.ErrorIs(t, r.Publish(1), ErrUsage, "nothing claimed")
	p, err := r.Peek(10)
	require.NoError(t, err)
	require.Len(t, p, 5)
	require.ErrorIs(t, r.Advance(6), ErrUsage)
	require.NoError(t, r.Advance(5))
	// Tail at 5: only 3 contiguous slots before the wrap.
	s, err = r.Claim(8)
	require.NoError(t, err)
	require.Len(t, s, 3)
	require.NoError(t, r.Publish(3))
	s, err = r.Claim(8)
	require.NoError(t, err)
	require.Len(t, s, 5)
	require.NoError(t, r.Publish(5))
	s, err = r.Claim(1)
	require.NoError(t, err)
	require.Len(t, s, 0, "full")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err = r.ClaimWait(ctx, 1)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	buf := make([]item8, 16)
	n, err := r.PopBatch(context.Background(), buf)
	require.NoError(t, err)
	require.Equal(t, 8, n, "PopBatch takes both sides of the wrap")
	require.Equal(t, 0, r.Len())
}

// TestModel drives claim/publish/peek/advance and the copying calls with
// random operations and compares every observable result with a plain
// slice model of the queue.
func TestModel(t *testing.T) {
	for _, capacity := range []int{1, 2, 8, 64} {
		t.Run(fmt.Sprint(capacity), func(t *testing.T) {
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, uint64(capacity)))
			r, err := Create[item8](posixSpec(t), capacity)
			require.NoError(t, err)
			defer r.Close()
			ctx := context.Background()
			var model []uint64 // published, not advanced
			var tail uint64    // next seq to publish
			var claimed []item8
			var peeked int
			for step := range 20000 {
				free := capacity - len(model)
				switch op := rng.IntN(9); op {
				case 0: // Claim
					n := rng.IntN(capacity+2) - 1
					s, err := r.Claim(n)
					require.NoError(t, err)
					want := 0
					if n > 0 {
						want = min(n, free, capacity-int(tail%uint64(capacity)))
					}
					require.Len(t, s, want, "step %d claim(%d)", step, n)
					for i := range s {
						s[i].Seq = tail + uint64(i)
					}
					claimed = s
				case 1: // Publish
					k := rng.IntN(len(claimed) + 1)
					require.NoError(t, r.Publish(k), "step %d", step)
					for i := range k {
						model = append(model, claimed[i].Seq)
					}
					tail += uint64(k)
					claimed = nil
					require.Error(t, r.Publish(1))
				case 2: // Peek
					n := rng.IntN(capacity+2) - 1
					s, err := r.Peek(n)
					require.NoError(t, err)
					want := 0
					if n > 0 && len(model) > 0 {
						head := model[0]
						want = min(n, len(model), capacity-int(head%uint64(capacity)))
					}
					require.Len(t, s, want, "step %d peek(%d)", step, n)
					for i := range s {
						require.Equal(t, model[i], s[i].Seq)
					}
					peeked = len(s)
				case 3: // Advance
					k := rng.IntN(peeked + 1)
					require.NoError(t, r.Advance(k))
					model = model[k:]
					peeked = 0
				case 4: // TryPush
					ok := r.TryPush(item8{tail})
					require.Equal(t, free > 0, ok)
					if ok {
						model = append(model, tail)
						tail++
					}
					claimed, peeked = nil, min(peeked, 0)
				case 5: // TryPop
					v, ok := r.TryPop()
					require.Equal(t, len(model) > 0, ok)
					if ok {
						require.Equal(t, model[0], v.Seq)
						model = model[1:]
					}
					peeked = 0
				case 6: // PushBatch, never more than fits (it would block)
					items := make([]item8, rng.IntN(free+1))
					for i := range items {
						items[i].Seq = tail + uint64(i)
					}
					n, err := r.PushBatch(ctx, items)
					require.NoError(t, err)
					require.Equal(t, len(items), n)
					for _, it := range items {
						model = append(model, it.Seq)
					}
					tail += uint64(n)
					claimed = nil
				case 7: // PopBatch, only when non-empty (it would block)
					if len(model) == 0 {
						continue
					}
					buf := make([]item8, rng.IntN(capacity+1)+1)
					n, err := r.PopBatch(ctx, buf)
					require.NoError(t, err)
					require.Equal(t, min(len(buf), len(model)), n)
					for i := range n {
						require.Equal(t, model[i], buf[i].Seq)
					}
					model = model[n:]
					peeked = 0
				case 8:
					require.Equal(t, len(model), r.Len())
				}
			}
		})
	}
}

// corruptions are garbage (head, tail) pairs relative to a consistent
// state; each must give ErrCorrupt, never a panic.
func TestCorruptIndexes(t *testing.T) {
	ctx := context.Background()
	cases := []struct{ head, tail uint64 }{
		{100, 100 + 17},       // more than capacity published
		{100, 99},             // tail behind head
		{0, ^uint64(0)},       // wild
		{^uint64(0) - 100, 5}, // 106 apart modulo 2^64
		{1 << 63, 1 << 2},     // sign games
	}
	for i, c := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			r, err := Create[item64](posixSpec(t), 16)
			require.NoError(t, err)
			defer r.Close()
			r.ctl.head.Store(c.head)
			r.ctl.tail.Store(c.tail)
			_, err = r.Pop(ctx)
			require.ErrorIs(t, err, ErrCorrupt)
			_, err = r.Peek(4)
			require.ErrorIs(t, err, ErrCorrupt)
			_, ok := r.TryPop()
			require.False(t, ok)
			require.ErrorIs(t, r.Push(ctx, item64{}), ErrCorrupt)
			_, err = r.Claim(1)
			require.ErrorIs(t, err, ErrCorrupt)
			_, err = r.Stats()
			require.ErrorIs(t, err, ErrCorrupt)
			require.LessOrEqual(t, r.Len(), r.Cap())
		})
	}

	// Scribbled while both roles are held: detected on the next refresh.
	r, err := Create[item8](posixSpec(t), 8)
	require.NoError(t, err)
	defer r.Close()
	require.NoError(t, r.Push(ctx, item8{1}))
	_, err = r.Pop(ctx)
	require.NoError(t, err)
	r.ctl.tail.Store(1 << 40) // the consumer sees an impossible tail
	_, err = r.Pop(ctx)
	require.ErrorIs(t, err, ErrCorrupt)
	r.ctl.tail.Store(1)
	r.ctl.head.Store(77) // the producer sees head past its tail
	for range 8 {
		if err = r.Push(ctx, item8{2}); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, ErrCorrupt)
}

// TestRandomScribble writes random garbage over the control block and the
// slots between random operations: every call must return (no panic, no
// hang) and any error must be one of the documented ones.
func TestRandomScribble(t *testing.T) {
	r, err := Create[item8](posixSpec(t), 8)
	require.NoError(t, err)
	defer r.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		switch rng.IntN(4) {
		case 0:
			r.ctl.head.Store(rng.Uint64N(64))
		case 1:
			r.ctl.tail.Store(rng.Uint64N(64))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Microsecond)
		var err error
		switch rng.IntN(6) {
		case 0:
			err = r.Push(ctx, item8{})
		case 1:
			_, err = r.Pop(ctx)
		case 2:
			var s []item8
			s, err = r.Claim(rng.IntN(10))
			if err == nil {
				err = r.Publish(len(s))
			}
		case 3:
			var s []item8
			s, err = r.Peek(rng.IntN(10))
			if err == nil {
				err = r.Advance(len(s))
			}
		case 4:
			_, err = r.PopBatch(ctx, make([]item8, 5))
		case 5:
			_, err = r.PushBatch(ctx, make([]item8, 5))
		}
		cancel()
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("unexpected error: %v", err)
		}
	}
}

func TestRolesInProcess(t *testing.T) {
	spec := posixSpec(t)
	a, err := Create[item8](spec, 8)
	require.NoError(t, err)
	defer a.Close()
	b, err := Open[item8](spec)
	require.NoError(t, err)
	defer b.Close()
	require.Zero(t, statsOf(t, a).Producer.PID, "create claims nothing")
	require.NoError(t, a.Push(context.Background(), item8{7}))
	// One process may hold both roles, through two handles...
	v, err := b.Pop(context.Background())
	require.NoError(t, err)
	require.Equal(t, uint64(7), v.Seq)
	// ...but not the same role twice.
	err = b.Push(context.Background(), item8{8})
	require.ErrorIs(t, err, ErrRoleTaken)
	require.ErrorContains(t, err, "another handle in this process")
	_, err = a.Pop(context.Background())
	require.ErrorIs(t, err, ErrRoleTaken)
	// Close releases: now b may produce.
	require.NoError(t, a.Close())
	require.Zero(t, statsOf(t, b).Producer.PID)
	require.NoError(t, b.Push(context.Background(), item8{8}))
}

// TestFileBackend runs a ring on a file: segment, through a second handle.
func TestFileBackend(t *testing.T) {
	spec := "file:" + filepath.Join(t.TempDir(), "ring")
	r, err := Create[item8](spec, 16, WithMode(0o600), WithPopulate())
	require.NoError(t, err)
	defer r.Close()
	c, err := Open[item8](spec)
	require.NoError(t, err)
	defer c.Close()
	ctx := context.Background()
	n, err := r.PushBatch(ctx, []item8{{1}, {2}, {3}})
	require.NoError(t, err)
	require.Equal(t, 3, n)
	buf := make([]item8, 4)
	n, err = c.PopBatch(ctx, buf)
	require.NoError(t, err)
	require.Equal(t, []item8{{1}, {2}, {3}}, buf[:n])
}

func TestInspect(t *testing.T) {
	spec := posixSpec(t)
	r, err := Create[item8](spec, 8)
	require.NoError(t, err)
	defer r.Close()
	require.True(t, r.TryPush(item8{1}))
	s, err := layout.Open(spec, layout.Expect{Kind: layout.KindAny})
	require.NoError(t, err)
	defer s.Close()
	st, err := Inspect(s)
	require.NoError(t, err)
	require.Equal(t, uint64(8), st.Cap)
	require.Equal(t, uint64(1), st.Len)
	require.Equal(t, layout.KindRing, st.Kind)
	require.True(t, st.Producer.Alive)
	require.Zero(t, st.Consumer.PID)
}
