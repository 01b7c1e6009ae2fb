package shmqueue_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/shmkit/shmkit/shmqueue"
)

type Job struct {
	ID   uint64
	Cost uint32
	_    uint32
}

// A producer pushes jobs and closes the queue; a consumer takes them until
// the queue is closed and drained. Any number of processes may push and pop.
func ExampleQueue() {
	spec := fmt.Sprintf("posix:/shmkit-example-queue-%d", os.Getpid())
	q, err := shmqueue.Create[Job](spec, 16)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer shmqueue.Remove(spec)
	defer q.Close()

	ctx := context.Background()
	for i := range 3 {
		if err := q.Push(ctx, Job{ID: uint64(i), Cost: 10 * uint32(i)}); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := q.CloseWrites(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("push after close:", errors.Is(q.Push(ctx, Job{}), shmqueue.ErrClosed))

	worker, err := shmqueue.Open[Job](spec) // in another process, typically
	if err != nil {
		fmt.Println(err)
		return
	}
	defer worker.Close()
	for {
		j, err := worker.Pop(ctx)
		if errors.Is(err, shmqueue.ErrClosed) {
			fmt.Println("closed and drained")
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("job", j.ID, "cost", j.Cost)
	}
	// Output:
	// push after close: true
	// job 0 cost 0
	// job 1 cost 10
	// job 2 cost 20
	// closed and drained
}
