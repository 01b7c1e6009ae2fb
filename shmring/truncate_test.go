package shmring

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/faultguard/faulttest"

	"github.com/shmkit/shmkit/segment"
	"github.com/stretchr/testify/require"
)

// requireTruncated checks err is the fault guard's, for this package.
func requireTruncated(t *testing.T, err error, spec string) {
	t.Helper()
	faulttest.RequireTruncated(t, err, "shmring", spec)
}

// TestTruncatedRing: a child process truncates the segment to 0 while this
// process pushes and pops in a loop on a WithFaultGuard handle (producer and
// consumer on two goroutines). Both loops end with the fault error, not
// SIGBUS; later calls return the same error; Close works.
func TestTruncatedRing(t *testing.T) {
	for backend, sp := range faulttest.Specs(t, segment.Remove) {
		t.Run(backend, func(t *testing.T) {
			spec, path := sp[0], sp[1]
			r, err := Create[item64](spec, 64, WithFaultGuard())
			require.NoError(t, err)
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
					err := r.Push(ctx, makeItem[item64](seq))
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
				for time.Now().Before(deadline) {
					ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
					_, err := r.Pop(ctx)
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
			// The handle is good only for Close now: every call returns the
			// first fault error.
			first := r.faultErr()
			require.Equal(t, first, r.Push(context.Background(), item64{}))
			_, err = r.Pop(context.Background())
			require.Equal(t, first, err)
			require.False(t, r.TryPush(item64{}))
			_, ok := r.TryPop()
			require.False(t, ok)
			_, err = r.Claim(1)
			require.Equal(t, first, err)
			_, err = r.Peek(1)
			require.Equal(t, first, err)
			_, err = r.Stats()
			require.Equal(t, first, err)
			require.Equal(t, 0, r.Len())
			require.NoError(t, r.Close())
		})
	}
}

// TestTruncatedByteRing is TestTruncatedRing for the byte ring.
func TestTruncatedByteRing(t *testing.T) {
	for backend, sp := range faulttest.Specs(t, segment.Remove) {
		t.Run(backend, func(t *testing.T) {
			spec, path := sp[0], sp[1]
			r, err := CreateBytes(spec, 4096, WithFaultGuard())
			require.NoError(t, err)
			p := faulttest.TruncateDuring(t, path)
			var wg sync.WaitGroup
			var perr, cerr error
			deadline := time.Now().Add(30 * time.Second)
			wg.Add(2)
			go func() {
				defer wg.Done()
				msg := []byte("twenty-odd bytes of payload")
				for i := 0; time.Now().Before(deadline); i++ {
					ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
					err := r.Write(ctx, msg[:i%len(msg)])
					cancel()
					if err != nil && !errors.Is(err, context.DeadlineExceeded) {
						perr = err
						return
					}
				}
			}()
			go func() {
				defer wg.Done()
				buf := make([]byte, 64)
				for i := 0; time.Now().Before(deadline); i++ {
					ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
					var err error
					if i%2 == 0 {
						_, err = r.ReadInto(ctx, buf)
					} else if _, err = r.ReadWait(ctx); err == nil {
						err = r.Release()
					}
					cancel()
					if err != nil && !errors.Is(err, context.DeadlineExceeded) {
						cerr = err
						return
					}
				}
			}()
			wg.Wait()
			require.NoError(t, p.Wait(time.Minute), p.Output())
			requireTruncated(t, perr, spec)
			requireTruncated(t, cerr, spec)
			first := r.faultErr()
			require.Equal(t, first, r.TryWrite([]byte("x")))
			_, err = r.Read()
			require.Equal(t, first, err)
			require.Equal(t, first, r.Release())
			_, err = r.Stats()
			require.Equal(t, first, err)
			require.NoError(t, r.Close())
		})
	}
}

// TestTruncatedDefaultHandle: without WithFaultGuard the per-item fast
// paths are not guarded, but everything else is: after a truncation,
// Stats, Len, Inspect, PushBatch, PopBatch, blocking waits and Close
// report it (or return 0) instead of faulting.
func TestTruncatedDefaultHandle(t *testing.T) {
	for backend, sp := range faulttest.Specs(t, segment.Remove) {
		t.Run(backend, func(t *testing.T) {
			spec, path := sp[0], sp[1]
			r, err := Create[item8](spec, 64)
			require.NoError(t, err)
			// Take both roles (the claims are guarded slow paths).
			require.NoError(t, r.Push(context.Background(), item8{1}))
			_, err = r.Pop(context.Background())
			require.NoError(t, err)
			faulttest.Truncate(t, path)

			insp, err := Inspect(r.Segment())
			requireTruncated(t, err, spec)
			require.Zero(t, insp.Len)
			require.Equal(t, 0, r.Len())
			_, err = r.Stats()
			requireTruncated(t, err, spec)
			// Stats recorded the fault: the next slow path (a batch call)
			// reports it.
			_, err = r.PushBatch(context.Background(), []item8{{1}, {2}})
			requireTruncated(t, err, spec)
			_, err = r.PopBatch(context.Background(), make([]item8, 4))
			requireTruncated(t, err, spec)
			require.NoError(t, r.Close())

			// A fresh handle on a truncated object: Open refuses it (the
			// segment layer checks the size).
			_, err = Open[item8](spec, WithInitTimeout(10*time.Millisecond))
			require.Error(t, err)
		})
	}
}

// A default handle parked in Pop on an empty ring is not woken by a
// truncation (nothing notifies a futex on a lost page), but its bounded
// park re-checks the ring (parkRecheck), faults, and returns the error.
func TestTruncatedWhileParked(t *testing.T) {
	for backend, sp := range faulttest.Specs(t, segment.Remove) {
		t.Run(backend, func(t *testing.T) {
			spec, path := sp[0], sp[1]
			r, err := Create[item8](spec, 64)
			require.NoError(t, err)
			defer r.Close()
			popped := make(chan error, 1)
			go func() {
				_, err := r.Pop(context.Background())
				popped <- err
			}()
			time.Sleep(50 * time.Millisecond) // parked on the empty ring
			faulttest.Truncate(t, path)
			select {
			case err := <-popped:
				requireTruncated(t, err, spec)
			case <-time.After(10 * time.Second):
				t.Fatal("a parked Pop never noticed the truncation")
			}
		})
	}
}
