package shmqueue

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/sync"
)

// pushOneChild opens the queue at args[0] and pushes args[1].
var pushOneChild = testproc.Register("shmqueue-push-one", func(args []string) error {
	q, err := Open[uint64](args[0])
	if err != nil {
		return err
	}
	defer q.Close()
	v, err := strconv.ParseUint(args[1], 10, 64)
	if err != nil {
		return err
	}
	return q.Push(context.Background(), v)
})

// waitResult is what a Wait started by waitInBackground returned, and when.
type waitResult struct {
	i   int
	err error
	at  time.Time
}

// waitInBackground runs ws.Wait(ctx) in a goroutine.
func waitInBackground(ctx context.Context, ws *sync.WaitSet) <-chan waitResult {
	got := make(chan waitResult, 1)
	go func() {
		i, err := ws.Wait(ctx)
		got <- waitResult{i, err, time.Now()}
	}()
	return got
}

// A WaitSet over a futex queue and a SysV queue: items pushed by real
// child processes wake the parent's Wait with the index of the queue that
// has them, while the parent is parked (not just spinning).
func TestWaitSetAcrossBackends(t *testing.T) {
	qs := make([]*Queue[uint64], 2)
	specs := make([]string, 2)
	qs[0], specs[0] = create[uint64](t, 4, WithBackend(BackendFutex))
	qs[1], specs[1] = create[uint64](t, 4, WithBackend(BackendSysV))
	ws, err := sync.NewWaitSet(qs[0], qs[1])
	require.NoError(t, err)
	defer ws.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for round, want := range []int{1, 0, 0, 1} {
		v := uint64(100*round + want)
		got := waitInBackground(ctx, ws)
		// Let the parent park on both notifiers before the child pushes.
		require.Eventually(t, func() bool {
			st0, err0 := qs[0].Stats()
			st1, err1 := qs[1].Stats()
			return err0 == nil && err1 == nil && st0.ConsumersWaiting && st1.ConsumersWaiting
		}, 10*time.Second, time.Millisecond)
		select {
		case r := <-got:
			t.Fatalf("Wait returned %d, %v before anything was pushed", r.i, r.err)
		default:
		}
		pushOneChild.Run(t, specs[want], strconv.FormatUint(v, 10))
		r := <-got
		require.NoError(t, r.err)
		require.Equal(t, want, r.i, "round %d", round)
		x, err := qs[r.i].TryPop()
		require.NoError(t, err)
		require.Equal(t, v, x)
		for _, q := range qs {
			_, err := q.TryPop()
			require.ErrorIs(t, err, ErrEmpty)
		}
	}

	// Closed for writes and drained reads as ready: TryPop says ErrClosed.
	require.NoError(t, qs[1].CloseWrites())
	i, err := ws.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, i)
	_, err = qs[1].TryPop()
	require.ErrorIs(t, err, ErrClosed)
}

// A producer killed after claiming its position and before publishing it
// (so before it could notify) must not strand a WaitSet parked on the
// queue: the queue is not empty (its cursors differ), and the producers
// after it do not notify, since their positions are not the one the
// consumers wait at. The WaitSet's bounded park finds it; TryPop then
// skips the dead producer's position as a hole and takes the next item.
func TestWaitSetDeadProducer(t *testing.T) {
	q, spec := create[uint64](t, 4, WithBackend(BackendFutex))
	ws, err := sync.NewWaitSet(q)
	require.NoError(t, err)
	defer ws.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := waitInBackground(ctx, ws)
	require.Eventually(t, func() bool {
		st, err := q.Stats()
		return err == nil && st.ConsumersWaiting
	}, 10*time.Second, time.Millisecond)

	cmd := pushOneChild.Command(t, spec, "7")
	cmd.Env = append(cmd.Env, crashpoint.Arm("shmqueue.push-claimed", 1))
	requireKilled(t, testproc.StartCmd(t, cmd))
	killed := time.Now()
	pushOneChild.Run(t, spec, "8")

	// A stranded Wait returns only when its context ends (a ready source
	// wins then), 30 s on; a bounded park within milliseconds.
	r := <-got
	require.NoError(t, r.err)
	require.Equal(t, 0, r.i)
	require.Less(t, r.at.Sub(killed), 10*time.Second, "the WaitSet slept through a non-empty queue until its context ended")
	v, err := q.TryPop()
	require.NoError(t, err)
	require.Equal(t, uint64(8), v)
	st, err := q.Stats()
	require.NoError(t, err)
	require.Equal(t, uint64(1), st.HolesSkipped)
}
