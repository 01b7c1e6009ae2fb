package fuzz_test

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/shmbus"
	"github.com/shmkit/shmkit/shmmap"
	"github.com/shmkit/shmkit/shmqueue"
	"github.com/shmkit/shmkit/shmring"
	shmsync "github.com/shmkit/shmkit/sync"
)

// peer runs one side of a structure (the producer, the map writer) in a
// loop on its own goroutine while the hostile reader runs, so that the
// scribbled segment is also live. It must not panic either; it may block
// only within its own calls' contexts.
type peer struct {
	stop chan struct{}
	done chan any
}

func startPeer(step func(ctx context.Context)) *peer {
	p := &peer{stop: make(chan struct{}), done: make(chan any, 1)}
	go func() {
		defer func() {
			if r := recover(); r != nil {
				p.done <- fmt.Sprintf("%v\n%s", r, debug.Stack())
				return
			}
			p.done <- nil
		}()
		debug.SetPanicOnFault(true)
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), hostileOpDeadline)
			step(ctx)
			cancel()
		}
	}()
	return p
}

// finish stops the peer and reports whether it stopped; a peer that does
// not stop is blocked in a call, which fails the test (and its handle must
// then not be closed under it).
func (p *peer) finish(t *testing.T, what string) bool {
	t.Helper()
	close(p.stop)
	select {
	case r := <-p.done:
		if r != nil {
			t.Errorf("%s panicked: %v", what, r)
		}
		return true
	case <-time.After(10 * time.Second):
		buf := make([]byte, 1<<20)
		t.Errorf("%s is blocked: it did not return within 10s of being stopped\n%s", what, buf[:runtime.Stack(buf, true)])
		return false
	}
}

func TestHostileRingConsumer(t *testing.T) {
	spec := hostileSpec(t, "hostile-ring")
	r, err := shmring.Create[item](spec, 64)
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	prod := startPeer(func(ctx context.Context) {
		if !r.TryPush(mkItem(n)) {
			_ = r.Push(ctx, mkItem(n))
		}
		n++
	})
	buf := make([]item, 16)
	runHostile(t, spec, r.Segment(), hostileOps(4000), func(ctx context.Context, i int) error {
		switch i % 6 {
		case 0:
			_, err := r.Pop(ctx)
			return err
		case 1:
			s, err := r.PeekWait(ctx, 8)
			if err != nil {
				return err
			}
			for j := range s {
				_ = s[j]
			}
			return r.Advance(len(s))
		case 2:
			_, err := r.PopBatch(ctx, buf)
			return err
		case 3:
			r.TryPop()
			return nil
		case 4:
			if n := r.Len(); n < 0 || n > r.Cap() {
				t.Errorf("Len %d outside [0, %d]", n, r.Cap())
			}
			_, err := r.Stats()
			return err
		default:
			s, err := r.Peek(64)
			if err == nil && len(s) > r.Cap() {
				t.Errorf("Peek returned %d items", len(s))
			}
			return err
		}
	})
	if prod.finish(t, "producer") {
		_ = r.Close()
	}
}

func TestHostileByteRingReader(t *testing.T) {
	spec := hostileSpec(t, "hostile-bytering")
	r, err := shmring.CreateBytes(spec, 1024)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("a message of moderate length, some forty bytes")
	var n int
	prod := startPeer(func(ctx context.Context) {
		if err := r.TryWrite(msg[:n%len(msg)]); err != nil {
			_ = r.Write(ctx, msg[:n%len(msg)])
		}
		n++
	})
	buf := make([]byte, 2048)
	runHostile(t, spec, r.Segment(), hostileOps(4000), func(ctx context.Context, i int) error {
		switch i % 4 {
		case 0:
			p, err := r.ReadWait(ctx)
			if err != nil {
				return err
			}
			if len(p) > r.MaxRecord() {
				t.Errorf("record of %d bytes, MaxRecord %d", len(p), r.MaxRecord())
			}
			for j := range p {
				_ = p[j]
			}
			return r.Release()
		case 1:
			_, err := r.ReadInto(ctx, buf)
			return err
		case 2:
			for range 4 {
				if _, err := r.Read(); err != nil {
					return err
				}
			}
			return r.Release()
		default:
			_ = r.Len()
			_, err := r.Stats()
			return err
		}
	})
	if prod.finish(t, "producer") {
		_ = r.Close()
	}
}

func TestHostileQueueConsumer(t *testing.T) {
	for _, backend := range []shmqueue.Backend{shmqueue.BackendFutex, shmqueue.BackendSysV} {
		t.Run(backend.String(), func(t *testing.T) { hostileQueue(t, backend) })
	}
}

func hostileQueue(t *testing.T, backend shmqueue.Backend) {
	spec := hostileSpec(t, "hostile-queue")
	q, err := shmqueue.Create[item](spec, 64, shmqueue.WithMaxHandles(4), shmqueue.WithBackend(backend))
	if err != nil {
		t.Fatal(err)
	}
	// Removes the SysV semaphore set too (the header the scribbler
	// corrupts is not what Remove trusts: it reopens the segment, and
	// falls back to the handle's own record below).
	t.Cleanup(func() { _ = shmqueue.Remove(spec) })
	if backend == shmqueue.BackendSysV {
		// The scribbled header may no longer name the set at cleanup time.
		params := q.Segment().Header().Params
		t.Cleanup(func() { removeSemSet(t, params) })
	}
	var n uint64
	prod := startPeer(func(ctx context.Context) {
		if q.TryPush(mkItem(n)) != nil {
			_ = q.Push(ctx, mkItem(n))
		}
		n++
	})
	buf := make([]item, 16)
	runHostile(t, spec, q.Segment(), hostileOps(4000), func(ctx context.Context, i int) error {
		switch i % 5 {
		case 0:
			_, err := q.Pop(ctx)
			return err
		case 1:
			_, err := q.PopBatch(ctx, buf)
			return err
		case 2:
			_, err := q.TryPop()
			return err
		case 3:
			_, err := q.TryPopBatch(buf)
			return err
		default:
			_ = q.Len()
			_, err := q.Stats()
			return err
		}
	})
	if prod.finish(t, "producer") {
		_ = q.Close()
	}
}

func TestHostileMapReader(t *testing.T) {
	spec := hostileSpec(t, "hostile-map")
	// A scribbled lock word can name a live thread that holds nothing; the
	// map then waits for it up to its lock timeout, which bounds every op
	// (Get, All, Put) just as a context bounds the other structures'.
	m, err := shmmap.Create[uint32, item](spec, 256, shmmap.WithShards(4), shmmap.WithLockTimeout(hostileOpDeadline))
	if err != nil {
		t.Fatal(err)
	}
	for k := range uint32(150) {
		if err := m.Put(k, mkItem(uint64(k))); err != nil {
			t.Fatal(err)
		}
	}
	var n uint32
	writer := startPeer(func(ctx context.Context) {
		k := n % 200
		if n%3 == 0 {
			m.Delete(k)
		} else {
			_ = m.Put(k, mkItem(uint64(n)))
		}
		n++
	})
	runHostile(t, spec, m.Segment(), hostileOps(4000), func(ctx context.Context, i int) error {
		k := uint32(i % 200)
		switch i % 4 {
		case 0:
			m.Get(k)
			return nil
		case 1:
			_, _, err := m.Load(k)
			return err
		case 2:
			seen := 0
			for range m.All() {
				if seen++; seen > 1<<20 {
					t.Errorf("All yielded over %d entries from a map of capacity %d", 1<<20, m.Cap())
					break
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
			return nil
		default:
			_ = m.Len()
			return nil
		}
	})
	if writer.finish(t, "writer") {
		_ = m.Close()
	}
}

// removeSemSet removes the SysV semaphore set a queue recorded at creation
// (parameter word 4 of its header: its identifier), if it still exists.
func removeSemSet(t *testing.T, params [layout.MaxParams]uint64) {
	s, err := shmsync.OpenSemSetID(int(params[4]))
	if err != nil {
		return // already removed by shmqueue.Remove
	}
	if err := s.Remove(); err != nil {
		t.Errorf("remove semaphore set %d: %v", params[4], err)
	}
}

// TestHostileBus scribbles over a live bus (cursors, subscriber table,
// sequence words, slots) while a publisher publishes and subscribers read,
// join, leave and inspect, in both policies.
func TestHostileBus(t *testing.T) {
	for _, over := range []shmbus.Overflow{shmbus.Block, shmbus.Overwrite} {
		t.Run(over.String(), func(t *testing.T) {
			spec := hostileSpec(t, "hostile-bus")
			b, err := shmbus.Create[item](spec, 64, shmbus.WithOverflow(over), shmbus.WithMaxSubscribers(8))
			if err != nil {
				t.Fatal(err)
			}
			var n uint64
			pub := startPeer(func(ctx context.Context) {
				_ = b.Publish(ctx, mkItem(n))
				n++
			})
			subs := make([]*shmbus.Subscriber[item], 3)
			buf := make([]item, 16)
			runHostile(t, spec, b.Segment(), hostileOps(3000), func(ctx context.Context, i int) error {
				k := i % len(subs)
				s := subs[k]
				if s == nil {
					var opts []shmbus.SubscribeOption
					if k == 0 {
						opts = append(opts, shmbus.Durable("hostile"))
					}
					if i%2 == 0 {
						opts = append(opts, shmbus.FromOldest())
					}
					var err error
					if s, err = b.Subscribe(opts...); err != nil {
						return err
					}
					subs[k] = s
				}
				switch i % 7 {
				case 0:
					_, err := s.Next(ctx)
					return err
				case 1:
					_, err := s.NextBatch(ctx, buf)
					return err
				case 2:
					if over == shmbus.Overwrite {
						_, err := s.Next(ctx) // no zero-copy reads: the publisher may overwrite any slot
						return err
					}
					p, err := s.PeekWait(ctx, 8)
					if err != nil {
						return err
					}
					for j := range p {
						_ = p[j]
					}
					return s.Release(len(p))
				case 3:
					_, err := s.TryNext()
					return err
				case 4:
					_, err := b.Stats()
					_ = s.Lag()
					return err
				case 5:
					subs[k] = nil
					return s.Close()
				default:
					_, err := s.Next(ctx)
					return err
				}
			})
			if pub.finish(t, "publisher") {
				_ = b.Close()
			}
		})
	}
}
