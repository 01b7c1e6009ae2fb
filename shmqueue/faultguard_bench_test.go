package shmqueue

import (
	"context"
	"testing"
)

// BenchmarkFaultGuard measures what the fault guard costs on the per-item
// calls: each pair runs the same operations on one in-process handle, as
// the calls are by default (only waits guarded) and on a handle made
// WithFaultGuard (every call guarded). One op is one item pushed and popped.
//
//	go test -run '^$' -bench FaultGuard -count 5 ./shmqueue/
func BenchmarkFaultGuard(b *testing.B) {
	ctx := context.Background()
	for _, be := range []Backend{BackendFutex, BackendSysV} {
		for _, guard := range []bool{false, true} {
			name := be.String() + "/default"
			opts := []Option{WithBackend(be)}
			if guard {
				name = be.String() + "/WithFaultGuard"
				opts = append(opts, WithFaultGuard())
			}
			open := func(b *testing.B) *Queue[uint64] {
				q, err := Create[uint64](newSpec(b), 1024, opts...)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { q.Close() })
				return q
			}
			b.Run("PushPop/"+name, func(b *testing.B) {
				q := open(b)
				for i := range b.N {
					_ = q.Push(ctx, uint64(i))
					_, _ = q.Pop(ctx)
				}
			})
			b.Run("TryPushPop/"+name, func(b *testing.B) {
				q := open(b)
				for i := range b.N {
					_ = q.TryPush(uint64(i))
					_, _ = q.TryPop()
				}
			})
		}
	}
}
