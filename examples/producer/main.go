// Command producer pushes orders into a shared queue until told to stop;
// examples/consumer takes them out. Run each in its own terminal:
//
//	go run ./examples/consumer                 # waits for the queue to appear
//	go run ./examples/producer -rate 2000      # creates it and starts pushing
//
// Both meet on -segment (default posix:/shmkit-orders; any segment spec
// works, e.g. file:/tmp/orders.shm or sysv:0x5eed). The queue is a
// shmqueue.Queue[orders.Order]: many producers and many consumers may share
// it, each order goes to exactly one consumer.
//
// On SIGINT or SIGTERM (Ctrl-C) the producer stops pushing, closes the queue
// for writes (consumers take what is left and then stop), waits up to -drain
// for the queue to empty, removes the segment and exits 0. A producer that
// is SIGKILLed closes nothing: the queue and the orders in it stay, consumers
// wait, and the next producer started on the same segment carries on.
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
	"github.com/shmkit/shmkit/shmqueue"
)

func main() {
	spec := flag.String("segment", orders.Segment, "segment spec of the queue (posix:/name, file:/path, sysv:0xKEY)")
	n := flag.Uint64("n", 0, "orders to push, then close the queue (0: until interrupted)")
	rate := flag.Float64("rate", 1000, "orders per second (0: as fast as the consumers take them)")
	capacity := flag.Int("cap", 1024, "queue capacity when creating it")
	backend := flag.String("backend", "futex", "queue synchronization when creating it: futex or sysv (a System V semaphore set)")
	drain := flag.Duration("drain", 10*time.Second, "on exit, how long to wait for consumers to empty the queue before removing it")
	keep := flag.Bool("keep", false, "leave the segment in place on exit")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *spec, *n, *rate, *capacity, *backend, *drain, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, spec string, n uint64, rate float64, capacity int, backend string, drain time.Duration, keep bool) error {
	var opts []shmqueue.Option
	switch backend {
	case "futex":
	case "sysv":
		opts = append(opts, shmqueue.WithBackend(shmqueue.BackendSysV))
	default:
		return fmt.Errorf("-backend %q: want futex or sysv", backend)
	}
	q, err := createOrJoin(spec, capacity, opts)
	if err != nil {
		return err
	}
	defer q.Close()

	me := uint32(os.Getpid())
	start := time.Now()
	report := time.NewTicker(time.Second)
	defer report.Stop()
	var pushed, last uint64
	lastTime := start
	for n == 0 || pushed < n {
		if rate > 0 {
			// Hold the pace: order k is due at start + k/rate.
			if wait := time.Until(start.Add(time.Duration(float64(pushed) / rate * 1e9))); wait > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(wait):
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
		o := orders.Make(me, pushed, time.Now().UnixNano())
		// Push blocks while the queue is full (no consumer, or slow ones)
		// and gives up when ctx ends.
		if err := q.Push(ctx, o); err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, shmqueue.ErrClosed) {
				fmt.Fprintln(os.Stderr, "producer: another producer closed the queue")
				break
			}
			return err
		}
		pushed++
		select {
		case now := <-report.C:
			fmt.Printf("producer: pushed %d orders (%.0f/s), %d waiting in the queue\n",
				pushed, float64(pushed-last)/now.Sub(lastTime).Seconds(), q.Len())
			last, lastTime = pushed, now
		default:
		}
	}
	stop := "done"
	if ctx.Err() != nil {
		stop = "interrupted"
	}
	fmt.Printf("producer: %s: pushed %d orders in %.1fs; closing the queue for writes\n",
		stop, pushed, time.Since(start).Seconds())

	// Closing for writes is how consumers learn that the stream ended: they
	// take what is left, then their Pop returns ErrClosed.
	if err := q.CloseWrites(); err != nil {
		return err
	}
	if keep {
		return nil
	}
	// Give the consumers a chance to drain before the name disappears
	// (attached consumers would keep working even after Remove, but one
	// started a moment later would find nothing). A second Ctrl-C cuts the
	// wait short.
	waitCtx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	for q.Len() > 0 && waitCtx.Err() == nil {
		select {
		case <-sigs:
			cancel()
		case <-time.After(10 * time.Millisecond):
		}
	}
	if left := q.Len(); left > 0 {
		fmt.Printf("producer: %d orders were not consumed\n", left)
	}
	if err := shmqueue.Remove(spec); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	fmt.Printf("producer: removed %s\n", spec)
	return nil
}

// createOrJoin creates the queue, or joins the one already at spec. A queue
// left closed by an earlier run cannot take new orders: it is replaced.
func createOrJoin(spec string, capacity int, opts []shmqueue.Option) (*shmqueue.Queue[orders.Order], error) {
	for range 3 {
		q, err := shmqueue.Create[orders.Order](spec, capacity, opts...)
		if err == nil {
			fmt.Printf("producer: created %s (capacity %d, %s backend)\n", spec, q.Cap(), q.Backend())
			return q, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		q, err = shmqueue.Open[orders.Order](spec)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed in between: create it again
		}
		if err != nil {
			return nil, err
		}
		st, err := q.Stats()
		if err != nil {
			q.Close()
			return nil, err
		}
		if !st.Closed {
			fmt.Printf("producer: joined %s (%d orders waiting)\n", spec, st.Len)
			return q, nil
		}
		q.Close()
		fmt.Printf("producer: replacing %s, closed by an earlier run\n", spec)
		if err := shmqueue.Remove(spec); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("could not create or join %s", spec)
}
