package shmqueue

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/faultguard/faulttest"

	"github.com/shmkit/shmkit/segment"
	shmsync "github.com/shmkit/shmkit/sync"
	"github.com/stretchr/testify/require"
)

// removeSemSetAtCleanup removes a SysV queue's semaphore set by its id at
// cleanup: once the segment is truncated, Remove(spec) can no longer read
// the header that names the set.
func removeSemSetAtCleanup(t *testing.T, q *Queue[uint64]) {
	st, err := q.Stats()
	require.NoError(t, err)
	if st.Backend != BackendSysV {
		return
	}
	t.Cleanup(func() {
		if s, err := shmsync.OpenSemSetID(st.SemID); err == nil {
			_ = s.Remove()
		}
	})
}

// requireTruncated checks err is the fault guard's, for this package.
func requireTruncated(t *testing.T, err error, spec string) {
	t.Helper()
	faulttest.RequireTruncated(t, err, "shmqueue", spec)
}

// TestTruncatedQueue: a child process truncates the segment to 0 while
// this process pushes and pops in a loop on a WithFaultGuard handle
// (producer and consumer on two goroutines). Both loops end with the fault
// error, not SIGBUS; later calls return the same error; Close works.
func TestTruncatedQueue(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be Backend) {
		for name, sp := range faulttest.Specs(t, func(s string) error { return Remove(s) }) {
			t.Run(name, func(t *testing.T) {
				spec, path := sp[0], sp[1]
				q, err := Create[uint64](spec, 64, WithBackend(be), WithFaultGuard())
				require.NoError(t, err)
				removeSemSetAtCleanup(t, q)
				p := faulttest.TruncateDuring(t, path)
				var wg sync.WaitGroup
				var perr, cerr error
				var pushed, popped int
				deadline := time.Now().Add(30 * time.Second)
				wg.Add(2)
				go func() {
					defer wg.Done()
					for seq := uint64(0); time.Now().Before(deadline); seq++ {
						ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
						var err error
						if seq%2 == 0 {
							err = q.Push(ctx, seq)
						} else if err = q.TryPush(seq); errors.Is(err, ErrFull) {
							err = nil
						}
						cancel()
						if err != nil && !errors.Is(err, context.DeadlineExceeded) {
							perr = err
							return
						}
						pushed++
					}
				}()
				go func() {
					defer wg.Done()
					for i := 0; time.Now().Before(deadline); i++ {
						ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
						var err error
						if i%2 == 0 {
							_, err = q.Pop(ctx)
						} else if _, err = q.TryPop(); errors.Is(err, ErrEmpty) {
							err = nil
						}
						cancel()
						if err != nil && !errors.Is(err, context.DeadlineExceeded) {
							cerr = err
							return
						}
						popped++
					}
				}()
				wg.Wait()
				require.NoError(t, p.Wait(time.Minute), p.Output())
				t.Logf("%d pushed, %d popped before the truncation was seen; producer: %v; consumer: %v", pushed, popped, perr, cerr)
				requireTruncated(t, perr, spec)
				requireTruncated(t, cerr, spec)
				// The handle is good only for Close now: every call returns
				// the first fault error.
				first := q.fg.Err()
				require.Equal(t, first, q.Push(context.Background(), 1))
				require.Equal(t, first, q.TryPush(1))
				_, err = q.Pop(context.Background())
				require.Equal(t, first, err)
				_, err = q.TryPop()
				require.Equal(t, first, err)
				_, err = q.PushBatch(context.Background(), []uint64{1, 2})
				require.Equal(t, first, err)
				_, err = q.PopBatch(context.Background(), make([]uint64, 2))
				require.Equal(t, first, err)
				_, err = q.Stats()
				require.Equal(t, first, err)
				require.Equal(t, first, q.CloseWrites())
				require.Equal(t, 0, q.Len())
				require.NoError(t, q.Close())
			})
		}
	})
}

// TestTruncatedQueueDefault: without WithFaultGuard the per-item fast
// paths are not guarded, but waits, Stats, Len, Inspect and Close are: a
// Pop blocked on an empty queue when the segment is truncated returns the
// fault error, and so does Stats of another handle; Close works.
func TestTruncatedQueueDefault(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be Backend) {
		for name, sp := range faulttest.Specs(t, func(s string) error { return Remove(s) }) {
			t.Run(name, func(t *testing.T) {
				spec, path := sp[0], sp[1]
				q, err := Create[uint64](spec, 64, WithBackend(be))
				require.NoError(t, err)
				removeSemSetAtCleanup(t, q)
				q2, err := Open[uint64](spec)
				require.NoError(t, err)
				q3, err := Open[uint64](spec)
				require.NoError(t, err)
				require.NoError(t, q.Push(context.Background(), 1))
				v, err := q.Pop(context.Background())
				require.NoError(t, err)
				require.Equal(t, uint64(1), v)

				popErr := make(chan error, 1)
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					_, err := q.Pop(ctx)
					popErr <- err
				}()
				require.Eventually(t, func() bool { return q.blocked(true) == 1 }, 10*time.Second, time.Millisecond)
				faulttest.Truncate(t, path)

				select {
				case err = <-popErr:
				case <-time.After(20 * time.Second):
					t.Fatal("the blocked Pop did not return after the truncation")
				}
				requireTruncated(t, err, spec)
				require.Equal(t, 0, q.blocked(true))
				_, serr := q.Stats()
				require.Equal(t, err, serr)
				require.Equal(t, err, q.Push(context.Background(), 2))

				// Another handle: Stats is the first to touch a lost page.
				_, err = q2.Stats()
				requireTruncated(t, err, spec)
				_, ierr := Inspect(q3.Segment())
				requireTruncated(t, ierr, spec)
				require.Equal(t, 0, q3.Len())
				_, err = q3.Stats()
				requireTruncated(t, err, spec) // Len recorded the fault
				require.NoError(t, q.Close())
				require.NoError(t, q2.Close())
				require.NoError(t, q3.Close())
				_ = segment.Remove(spec)
			})
		}
	})
}
