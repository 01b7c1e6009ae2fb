package shmbus

import (
	"context"
	"testing"
)

// BenchmarkFaultGuard measures what the fault guard costs on the per-item
// calls: the same operations on one in-process bus with two subscribers, as
// the calls are by default (only slow paths guarded) and on a handle made
// WithFaultGuard (every call guarded). One op is one message published and
// read by both subscribers.
//
//	go test -run '^$' -bench FaultGuard -count 5 ./shmbus/
func BenchmarkFaultGuard(b *testing.B) {
	ctx := context.Background()
	for _, guard := range []bool{false, true} {
		name, opts := "default", []Option(nil)
		if guard {
			name, opts = "WithFaultGuard", []Option{WithFaultGuard()}
		}
		open := func(b *testing.B) (*Bus[uint64], []*Subscriber[uint64]) {
			bus, err := Create[uint64](posixSpec(b), 1024, opts...)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { bus.Close() })
			ss := make([]*Subscriber[uint64], 2)
			for i := range ss {
				if ss[i], err = bus.Subscribe(); err != nil {
					b.Fatal(err)
				}
			}
			return bus, ss
		}
		b.Run("PublishNext/"+name, func(b *testing.B) {
			bus, ss := open(b)
			for i := range b.N {
				_ = bus.Publish(ctx, uint64(i))
				for _, s := range ss {
					_, _ = s.Next(ctx)
				}
			}
		})
		b.Run("TryPublishTryNext/"+name, func(b *testing.B) {
			bus, ss := open(b)
			for i := range b.N {
				_ = bus.TryPublish(uint64(i))
				for _, s := range ss {
					_, _ = s.TryNext()
				}
			}
		})
		b.Run("PublishPeekRelease/"+name, func(b *testing.B) {
			bus, ss := open(b)
			for i := range b.N {
				_ = bus.Publish(ctx, uint64(i))
				for _, s := range ss {
					p, _ := s.Peek(1)
					_ = s.Release(len(p))
				}
			}
		})
	}
}
