// Command consumer takes orders out of the shared queue that
// examples/producer fills. Start it before or after the producer, and start
// as many as you like: each order goes to exactly one of them.
//
//	go run ./examples/consumer
//	go run ./examples/consumer -work 2ms       # a slow consumer
//
// It waits for the segment to appear, checks every order (checksum, and that
// each producer's orders arrive in increasing order), prints progress every
// second, and exits 0 when the producer closes the queue and it is drained,
// or when interrupted (SIGINT, SIGTERM). It exits 1 if an order failed its
// check.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shmkit/shmkit/examples/orders"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/shmqueue"
)

func main() {
	spec := flag.String("segment", orders.Segment, "segment spec of the queue")
	work := flag.Duration("work", 0, "time spent on each order (simulated work)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, *spec, *work)
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

// stats is what one consumer saw.
type stats struct {
	received   uint64
	bad        uint64            // checksum mismatch
	outOfOrder uint64            // an order not after the previous one of its producer
	last       map[uint32]uint64 // per producer: the last ID + 1
	latency    time.Duration     // sum of (arrival - order time)
}

func (s *stats) take(o *orders.Order) {
	s.received++
	if !o.Valid() {
		s.bad++
		return
	}
	if o.ID+1 <= s.last[o.Producer] {
		s.outOfOrder++
	}
	s.last[o.Producer] = o.ID + 1
	s.latency += time.Duration(time.Now().UnixNano() - o.Time)
}

func run(ctx context.Context, spec string, work time.Duration) (bool, error) {
	q, err := waitForQueue(ctx, spec)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Println("consumer: interrupted while waiting for the queue")
			return true, nil
		}
		return false, err
	}
	defer q.Close()

	st := stats{last: map[uint32]uint64{}}
	report := time.NewTicker(time.Second)
	defer report.Stop()
	var prev uint64
	prevTime := time.Now()
	why := ""
	for why == "" {
		o, err := q.Pop(ctx)
		switch {
		case err == nil:
			st.take(&o)
			if work > 0 {
				time.Sleep(work)
			}
		case errors.Is(err, shmqueue.ErrClosed):
			why = "the queue is closed and drained"
		case ctx.Err() != nil:
			why = "interrupted"
		default:
			return false, err
		}
		select {
		case now := <-report.C:
			fmt.Printf("consumer: received %d orders (%.0f/s), %d waiting\n",
				st.received, float64(st.received-prev)/now.Sub(prevTime).Seconds(), q.Len())
			prev, prevTime = st.received, now
		default:
		}
	}
	mean := time.Duration(0)
	if good := st.received - st.bad; good > 0 {
		mean = st.latency / time.Duration(good)
	}
	fmt.Printf("consumer: %s: received %d orders from %d producer(s), %d bad, %d out of order, mean latency %v\n",
		why, st.received, len(st.last), st.bad, st.outOfOrder, mean.Round(time.Microsecond))
	return st.bad == 0 && st.outOfOrder == 0, nil
}

// waitForQueue opens the queue at spec, waiting for it to be created.
func waitForQueue(ctx context.Context, spec string) (*shmqueue.Queue[orders.Order], error) {
	said := false
	for {
		q, err := shmqueue.Open[orders.Order](spec)
		if err == nil {
			fmt.Printf("consumer: attached to %s (%d orders waiting)\n", spec, q.Len())
			return q, nil
		}
		// Not there yet, or its creator is still setting it up: retry.
		// Anything else (a segment holding another type, a corrupt header)
		// will not get better by waiting.
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, layout.ErrNotReady) && !errors.Is(err, layout.ErrTooSmall) {
			return nil, err
		}
		if !said {
			fmt.Printf("consumer: waiting for %s to be created...\n", spec)
			said = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
