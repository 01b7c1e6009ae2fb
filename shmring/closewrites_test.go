package shmring

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testproc"
	shmsync "github.com/shmkit/shmkit/sync"
	"github.com/stretchr/testify/require"
)

func TestCloseWritesDrainsThenClosed(t *testing.T) {
	spec := posixSpec(t)
	r, err := Create[item8](spec, 8)
	require.NoError(t, err)
	defer r.Close()
	ctx := timeoutCtx(t, 10*time.Second)
	for i := range 3 {
		require.NoError(t, r.Push(ctx, item8{uint64(i)}))
	}
	require.NoError(t, r.CloseWrites())
	require.NoError(t, r.CloseWrites(), "idempotent")
	require.ErrorIs(t, r.Push(ctx, item8{9}), ErrClosed)
	require.ErrorContains(t, r.Push(ctx, item8{9}), "writes were closed")
	st := statsOf(t, r)
	require.True(t, st.WritesClosed)
	require.Zero(t, st.Producer.PID, "CloseWrites releases the producer role")

	// Another handle cannot produce either.
	r2, err := Open[item8](spec)
	require.NoError(t, err)
	defer r2.Close()
	require.ErrorIs(t, r2.Push(ctx, item8{9}), ErrClosed)

	for i := range 3 {
		v, err := r.Pop(ctx)
		require.NoError(t, err)
		require.Equal(t, uint64(i), v.Seq)
	}
	_, err = r.Pop(ctx)
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorContains(t, err, "every item was read")
	_, ok := r.TryPop()
	require.False(t, ok)
	_, err = r.PeekWait(ctx, 4)
	require.ErrorIs(t, err, ErrClosed)
}

func TestCloseWritesByteRing(t *testing.T) {
	r, err := CreateBytes(posixSpec(t), 1024)
	require.NoError(t, err)
	defer r.Close()
	ctx := timeoutCtx(t, 10*time.Second)
	require.NoError(t, r.Write(ctx, []byte("last words")))
	require.NoError(t, r.CloseWrites())
	buf := make([]byte, 64)
	n, err := r.ReadInto(ctx, buf)
	require.NoError(t, err)
	require.Equal(t, "last words", string(buf[:n]))
	_, err = r.ReadInto(ctx, buf)
	require.ErrorIs(t, err, ErrClosed)
}

// closingProducer pushes args[1] items, then closes writes and exits.
var closingProducer = testproc.Register("ring-close-writes", func(a []string) error {
	r, err := Open[item8](a[0])
	if err != nil {
		return err
	}
	defer r.Close()
	n, _ := strconv.Atoi(a[1])
	for i := range n {
		if err := r.Push(context.Background(), item8{uint64(i)}); err != nil {
			return err
		}
	}
	return r.CloseWrites()
})

// A consumer parked on an empty ring wakes when another process closes
// writes, reads everything, then gets ErrClosed: it does not wait for ever.
func TestCloseWritesWakesParkedConsumer(t *testing.T) {
	spec := posixSpec(t)
	r, err := Create[item8](spec, 16, WithWaitPolicy(shmsync.ParkOnly))
	require.NoError(t, err)
	defer r.Close()
	ctx := timeoutCtx(t, 20*time.Second)
	got := make(chan error, 1)
	count := 0
	go func() {
		for {
			v, err := r.Pop(ctx)
			if err != nil {
				got <- err
				return
			}
			if v.Seq != uint64(count) {
				got <- fmt.Errorf("item %d, want %d", v.Seq, count)
				return
			}
			count++
		}
	}()
	time.Sleep(20 * time.Millisecond) // let it park on the empty ring
	p := closingProducer.Start(t, spec, "1000")
	require.NoError(t, p.Wait(time.Minute), p.Output())
	err = <-got
	require.ErrorIs(t, err, ErrClosed)
	require.Equal(t, 1000, count)
}
