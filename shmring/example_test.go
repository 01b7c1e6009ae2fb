package shmring_test

import (
	"context"
	"fmt"
	"os"

	"github.com/shmkit/shmkit/segment"
	"github.com/shmkit/shmkit/shmring"
)

type Order struct {
	ID    uint64
	Price float64
	Qty   int32
}

func Example() {
	spec := fmt.Sprintf("posix:/shmring-example-%d", os.Getpid())
	defer segment.Remove(spec)

	// Normally the producer and the consumer are two processes, each with
	// its own handle (Create in one, Open in the other).
	r, err := shmring.Create[Order](spec, 1024)
	if err != nil {
		panic(err)
	}
	defer r.Close()
	ctx := context.Background()

	// Copying API.
	_ = r.Push(ctx, Order{ID: 1, Price: 9.5, Qty: 3})

	// Zero-copy API: fill slots in place, publish them with one store.
	slots, _ := r.ClaimWait(ctx, 2)
	for i := range slots {
		slots[i] = Order{ID: uint64(2 + i), Price: 10, Qty: 1}
	}
	_ = r.Publish(len(slots))

	// Consume in place; Advance releases the slots to the producer.
	for r.Len() > 0 {
		batch, _ := r.PeekWait(ctx, 16)
		for _, o := range batch {
			fmt.Println(o.ID, o.Price, o.Qty)
		}
		_ = r.Advance(len(batch))
	}
	// Output:
	// 1 9.5 3
	// 2 10 1
	// 3 10 1
}

func ExampleByteRing() {
	spec := fmt.Sprintf("posix:/shmring-example-bytes-%d", os.Getpid())
	defer segment.Remove(spec)
	r, err := shmring.CreateBytes(spec, 4096)
	if err != nil {
		panic(err)
	}
	defer r.Close()
	ctx := context.Background()

	_ = r.Write(ctx, []byte(`{"event":"start"}`))
	buf, _ := r.ReserveWait(ctx, 64) // zero-copy: encode in place
	n := copy(buf, `{"event":"stop"}`)
	_ = r.Commit(n)

	for range 2 {
		rec, _ := r.ReadWait(ctx) // aliases shared memory until Release
		fmt.Println(string(rec))
	}
	_ = r.Release()
	// Output:
	// {"event":"start"}
	// {"event":"stop"}
}
