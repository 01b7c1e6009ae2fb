package shmbus

import (
	"context"
	"testing"
)

// BenchmarkPublishNext measures one Publish and one Next per subscriber in
// one goroutine (no cross-core transfer): the per-message cost of the code
// paths, and that they allocate nothing.
func BenchmarkPublishNext(b *testing.B) {
	for _, o := range []Overflow{Block, Overwrite} {
		for _, subs := range []int{1, 2, 4} {
			b.Run(o.String()+"/subs="+string(rune('0'+subs)), func(b *testing.B) {
				spec := posixSpec(b)
				bus, err := Create[msg](spec, 1024, WithOverflow(o))
				if err != nil {
					b.Fatal(err)
				}
				defer bus.Close()
				ss := make([]*Subscriber[msg], subs)
				for i := range ss {
					if ss[i], err = bus.Subscribe(); err != nil {
						b.Fatal(err)
					}
				}
				ctx := context.Background()
				v := makeMsg(1)
				b.ReportAllocs()
				for b.Loop() {
					if err := bus.Publish(ctx, v); err != nil {
						b.Fatal(err)
					}
					for _, s := range ss {
						if _, err := s.Next(ctx); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}
