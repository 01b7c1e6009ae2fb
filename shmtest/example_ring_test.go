package shmtest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/shmkit/shmkit/shmring"
	"github.com/shmkit/shmkit/shmtest"
)

// ringProducer publishes items producer<<32|seq for seq = 0, 1, ... into the
// ring args[0] (forever, or args[3] items), recording each in the ledger
// args[1] as "pushing" before it claims the slot and "pushed" after it
// published it.
var ringProducer = shmtest.Register("example-ring-producer", func(args []string) error {
	r, err := shmring.Open[uint64](args[0])
	if err != nil {
		return err
	}
	l, err := shmtest.OpenLedger(args[1])
	if err != nil {
		return err
	}
	producer, _ := strconv.ParseUint(args[2], 10, 32)
	n, _ := strconv.ParseUint(args[3], 10, 64)
	for seq := uint64(0); n == 0 || seq < n; seq++ {
		if err := l.Pushing(uint32(producer), seq); err != nil {
			return err
		}
		// The zero-copy path: claim a slot, fill it in place, publish.
		slot, err := r.ClaimWait(context.Background(), 1)
		if err != nil {
			return err
		}
		slot[0] = producer<<32 | seq
		if err := r.Publish(1); err != nil {
			return err
		}
		if err := l.Pushed(uint32(producer), seq); err != nil {
			return err
		}
	}
	return r.Close()
})

// A crash test of a ring: producers SIGKILLed at random moments and inside
// the ring's publish window, each replaced by a new one that takes over
// the dead producer's role, while this process consumes. The ledger then
// shows every pushed item delivered exactly once and in order.
func Example_ring() {
	dir, err := os.MkdirTemp("", "shmtest-ring")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	spec := "file:" + filepath.Join(dir, "ring")
	r, err := shmring.Create[uint64](spec, 64)
	if err != nil {
		panic(err)
	}
	defer r.Close()
	ledger, err := shmtest.OpenLedger(filepath.Join(dir, "ledger"))
	if err != nil {
		panic(err)
	}
	defer ledger.Close()

	// The consumer: this process, until told to stop.
	stop := make(chan struct{})
	consumed := make(chan error, 1)
	go func() {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			v, err := r.Pop(ctx)
			cancel()
			if err == nil {
				err = ledger.Popped(uint32(v>>32), v&(1<<32-1))
			}
			if err != nil && ctx.Err() == nil {
				consumed <- err
				return
			}
			select {
			case <-stop:
				consumed <- nil
				return
			default:
			}
		}
	}()

	start := func(producer int, count string, opts ...shmtest.Option) *shmtest.Proc {
		args := shmtest.Args(spec, ledger.Path(), strconv.Itoa(producer), count)
		p, err := ringProducer.Launch(append([]shmtest.Option{args}, opts...)...)
		if err != nil {
			panic(err)
		}
		return p
	}
	// Producers 1-3 die at random moments, 4 at its 100th publish, and 5
	// runs to completion.
	for producer := 1; producer <= 3; producer++ {
		p := start(producer, "0", shmtest.KillWithin(300*time.Millisecond))
		_ = p.Wait(time.Minute)
	}
	p := start(4, "1000", shmtest.KillAt("ring.publishing", 100))
	_ = p.Wait(time.Minute)
	fmt.Println("producer 4 killed while publishing:", p.Killed())
	p = start(5, "1000")
	fmt.Println("producer 5 finished:", p.Wait(time.Minute) == nil)

	// Everything producer 5 pushed is in the ring; stop the consumer and
	// drain the rest.
	close(stop)
	if err := <-consumed; err != nil {
		panic(err)
	}
	for {
		v, ok := r.TryPop()
		if !ok {
			break
		}
		_ = ledger.Popped(uint32(v>>32), v&(1<<32-1))
	}
	fmt.Println("checks:", ledger.Check(shmtest.ExactlyOnce(), shmtest.InOrderPerProducer()))
	// Output:
	// producer 4 killed while publishing: true
	// producer 5 finished: true
	// checks: <nil>
}
