package shmring

import (
	"context"
	"testing"
)

// BenchmarkFaultGuard measures what the fault guard (see internal/faultguard
// and guardP) costs on the hot paths: each triple runs the same operations
// on one in-process handle holding both roles, through the bare method
// bodies (do*: the code before the guard existed), the public methods as
// they are by default (fast paths unguarded, slow paths guarded), and the
// public methods of a handle made WithFaultGuard (every call guarded). One
// op is one item (record) produced and consumed.
//
//	go test -run '^$' -bench FaultGuard -count 5 ./shmring/
func BenchmarkFaultGuard(b *testing.B) {
	ctx := context.Background()
	ring := func(b *testing.B, opts ...Option) *Ring[uint64] {
		r, err := Create[uint64](posixSpec(b), 1024, opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { r.Close() })
		return r
	}
	bytes := func(b *testing.B, opts ...Option) *ByteRing {
		r, err := CreateBytes(posixSpec(b), 1<<16, opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { r.Close() })
		return r
	}
	msg := make([]byte, 16)
	// The public methods run twice: by default, and on a WithFaultGuard
	// handle.
	public := []struct {
		name string
		opts []Option
	}{{"default", nil}, {"WithFaultGuard", []Option{WithFaultGuard()}}}

	b.Run("PushPop/do", func(b *testing.B) {
		r := ring(b)
		var v uint64
		for i := range b.N {
			v = uint64(i)
			_ = r.doPush(ctx, &v)
			_ = r.doPop(ctx, &v)
		}
	})
	for _, g := range public {
		b.Run("PushPop/"+g.name, func(b *testing.B) {
			r := ring(b, g.opts...)
			for i := range b.N {
				_ = r.Push(ctx, uint64(i))
				_, _ = r.Pop(ctx)
			}
		})
	}
	b.Run("TryPushPop/do", func(b *testing.B) {
		r := ring(b)
		var v uint64
		for i := range b.N {
			v = uint64(i)
			r.doTryPush(&v)
			r.doTryPop(&v)
		}
	})
	for _, g := range public {
		b.Run("TryPushPop/"+g.name, func(b *testing.B) {
			r := ring(b, g.opts...)
			for i := range b.N {
				r.TryPush(uint64(i))
				r.TryPop()
			}
		})
	}
	b.Run("ClaimPublishPeekAdvance/do", func(b *testing.B) {
		r := ring(b)
		for i := range b.N {
			s, _ := r.doClaim(1)
			s[0] = uint64(i)
			_ = r.doPublish(1)
			p, _ := r.doPeek(1)
			_ = p[0]
			_ = r.doAdvance(1)
		}
	})
	for _, g := range public {
		b.Run("ClaimPublishPeekAdvance/"+g.name, func(b *testing.B) {
			r := ring(b, g.opts...)
			for i := range b.N {
				s, _ := r.Claim(1)
				s[0] = uint64(i)
				_ = r.Publish(1)
				p, _ := r.Peek(1)
				_ = p[0]
				_ = r.Advance(1)
			}
		})
	}
	b.Run("ByteWriteRead/do", func(b *testing.B) {
		r := bytes(b)
		for range b.N {
			_ = r.doWrite(ctx, msg)
			_, _ = r.doRead()
			_ = r.doRelease()
		}
	})
	for _, g := range public {
		b.Run("ByteWriteRead/"+g.name, func(b *testing.B) {
			r := bytes(b, g.opts...)
			for range b.N {
				_ = r.Write(ctx, msg)
				_, _ = r.Read()
				_ = r.Release()
			}
		})
	}
}
