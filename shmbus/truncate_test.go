package shmbus

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
	faulttest.RequireTruncated(t, err, "shmbus", spec)
}

// TestTruncatedBus: a child process truncates the segment to 0 while this
// process publishes (one goroutine) and reads with two subscribers (one
// goroutine each) on a WithFaultGuard handle. Every loop ends with the
// fault error, not SIGBUS; later calls return the same error; Close works.
func TestTruncatedBus(t *testing.T) {
	for _, o := range []Overflow{Block, Overwrite} {
		for backend, sp := range faulttest.Specs(t, segment.Remove) {
			t.Run(o.String()+"/"+backend, func(t *testing.T) {
				spec, path := sp[0], sp[1]
				_ = segment.Remove(spec)
				b, err := Create[msg](spec, 64, WithOverflow(o), WithFaultGuard())
				require.NoError(t, err)
				subs := make([]*Subscriber[msg], 2)
				for i := range subs {
					subs[i], err = b.Subscribe()
					require.NoError(t, err)
				}
				p := faulttest.TruncateDuring(t, path)
				var wg sync.WaitGroup
				errs := make([]error, 3)
				counts := make([]int, 3)
				deadline := time.Now().Add(30 * time.Second)
				wg.Add(3)
				go func() {
					defer wg.Done()
					for seq := uint64(0); time.Now().Before(deadline); seq++ {
						ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
						var err error
						if seq%2 == 0 {
							err = b.Publish(ctx, makeMsg(seq))
						} else if err = b.TryPublish(makeMsg(seq)); errors.Is(err, ErrFull) {
							err = nil
						}
						cancel()
						if err != nil && !errors.Is(err, context.DeadlineExceeded) {
							errs[0] = err
							return
						}
						counts[0]++
					}
				}()
				for i, s := range subs {
					go func() {
						defer wg.Done()
						for j := 0; time.Now().Before(deadline); j++ {
							ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
							var err error
							switch {
							case j%2 == 0:
								_, err = s.Next(ctx)
							case o == Block:
								var p []msg
								if p, err = s.Peek(4); err == nil {
									err = s.Release(len(p))
								}
							default:
								_, err = s.TryNext()
							}
							cancel()
							if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrEmpty) || errors.Is(err, ErrLagged) {
								counts[i+1]++
								continue
							}
							errs[i+1] = err
							return
						}
					}()
				}
				wg.Wait()
				require.NoError(t, p.Wait(time.Minute), p.Output())
				t.Logf("calls before the truncation was seen: %v; errors: %v", counts, errs)
				for _, err := range errs {
					requireTruncated(t, err, spec)
				}
				first := b.fg.Err()
				require.Equal(t, first, b.Publish(context.Background(), msg{}))
				require.Equal(t, first, b.TryPublish(msg{}))
				for _, s := range subs {
					_, err = s.Next(context.Background())
					require.Equal(t, first, err)
					_, err = s.TryNext()
					require.Equal(t, first, err)
					_, err = s.NextBatch(context.Background(), make([]msg, 4))
					require.Equal(t, first, err)
					require.Zero(t, s.Lag())
				}
				_, err = b.Subscribe()
				require.Equal(t, first, err)
				_, err = b.Stats()
				require.Equal(t, first, err)
				require.Zero(t, b.Published())
				require.NoError(t, subs[0].Close())
				require.NoError(t, b.Close())
			})
		}
	}
}

// TestTruncatedBusDefault: without WithFaultGuard the per-item fast paths
// are not guarded, but waits, Stats, Inspect, the tool functions and Close
// are: a Next blocked on an empty bus when the segment is truncated
// returns the fault error, and so does Stats of another handle.
func TestTruncatedBusDefault(t *testing.T) {
	for backend, sp := range faulttest.Specs(t, segment.Remove) {
		t.Run(backend, func(t *testing.T) {
			spec, path := sp[0], sp[1]
			b, err := Create[msg](spec, 64)
			require.NoError(t, err)
			s, err := b.Subscribe(Durable("d"))
			require.NoError(t, err)
			b2, err := Open[msg](spec)
			require.NoError(t, err)
			b3, err := Open[msg](spec)
			require.NoError(t, err)
			require.NoError(t, b.Publish(context.Background(), makeMsg(1)))
			_, err = s.Next(context.Background())
			require.NoError(t, err)

			nextErr := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_, err := s.Next(ctx)
				nextErr <- err
			}()
			require.Eventually(t, func() bool {
				st, err := b2.Stats()
				return err == nil && st.SubscriberWaiting
			}, 10*time.Second, time.Millisecond)
			faulttest.Truncate(t, path)

			select {
			case err = <-nextErr:
			case <-time.After(20 * time.Second):
				t.Fatal("the blocked Next did not return after the truncation")
			}
			requireTruncated(t, err, spec)
			_, serr := b.Stats()
			require.Equal(t, err, serr)
			require.Equal(t, err, b.Publish(context.Background(), makeMsg(2)))

			// Other handles: Stats, Inspect and the tool functions are the
			// first to touch a lost page.
			_, err = b2.Stats()
			requireTruncated(t, err, spec)
			_, err = Inspect(b3.Segment())
			requireTruncated(t, err, spec)
			_, err = ReleaseDeadSubscribers(b3.Segment())
			requireTruncated(t, err, spec)
			requireTruncated(t, RemoveSubscriber(b3.Segment(), "d"), spec)
			require.NoError(t, s.Close())
			require.NoError(t, b.Close())
			require.NoError(t, b2.Close())
			require.NoError(t, b3.Close())
		})
	}
}
