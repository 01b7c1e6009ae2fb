package shmring_test

import (
	"context"
	"fmt"
	"os"

	"github.com/shmkit/shmkit/shmring"
	shsync "github.com/shmkit/shmkit/sync"
)

// One consumer waits on several rings at once with a sync.WaitSet: Wait
// parks on all of them (one futex_waitv) and reports a ready ring's index;
// the consumer then drains that ring with TryPop. In real use each ring has
// its producer in another process.
func ExampleRing_WaitSource() {
	var rings []*shmring.Ring[int64]
	var srcs []shsync.Waitable
	for i := range 3 {
		spec := fmt.Sprintf("posix:/shmkit-example-waitset-%d-%d", os.Getpid(), i)
		r, err := shmring.Create[int64](spec, 8)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer shmring.Remove(spec)
		defer r.Close()
		rings = append(rings, r)
		srcs = append(srcs, r) // a Ring is a sync.Waitable
	}
	ws, err := shsync.NewWaitSet(srcs...)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ws.Close()

	// Producers (here: this goroutine) publish to rings 2 and 0.
	rings[2].TryPush(20)
	rings[2].TryPush(21)
	rings[0].TryPush(7)

	for range 2 {
		i, err := ws.Wait(context.Background())
		if err != nil {
			fmt.Println(err)
			return
		}
		for {
			v, ok := rings[i].TryPop()
			if !ok {
				break
			}
			fmt.Printf("ring %d: %d\n", i, v)
		}
	}
	// Output:
	// ring 0: 7
	// ring 2: 20
	// ring 2: 21
}
