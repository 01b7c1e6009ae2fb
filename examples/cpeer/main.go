// Command cpeer is the Go side of the C examples in examples/c: it creates
// a structure of interop.Item (the struct examples/c/item.h describes) and
// produces into it or consumes from it, so each C program has a Go peer to
// talk to. Run it in one terminal and the C program in another:
//
//	go run ./examples/cpeer -mode ring-produce -segment posix:/cdemo -n 1000000
//	./ring_consumer posix:/cdemo 1000000
//
//	go run ./examples/cpeer -mode ring-consume -segment posix:/cdemo -n 1000000
//	./ring_producer posix:/cdemo 1000000
//
//	go run ./examples/cpeer -mode bus-publish -segment posix:/cbus -n 100000
//	./bus_subscriber posix:/cbus            # within -wait of the start
//
//	go run ./examples/cpeer -mode map -segment posix:/cmap -n 1000 -keep
//	./map_get posix:/cmap 0 7 14
//
// The segment is removed on exit unless -keep.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/shmkit/shmkit/interop"
	"github.com/shmkit/shmkit/segment"
	"github.com/shmkit/shmkit/shmbus"
	"github.com/shmkit/shmkit/shmmap"
	"github.com/shmkit/shmkit/shmring"
)

func main() {
	mode := flag.String("mode", "ring-produce", "ring-produce, ring-consume, bus-publish or map")
	spec := flag.String("segment", "posix:/shmkit-cdemo", "segment spec")
	n := flag.Uint64("n", 1000000, "items to move")
	wait := flag.Duration("wait", 10*time.Second, "bus-publish: how long to wait for a subscriber before publishing")
	keep := flag.Bool("keep", false, "leave the segment in place on exit")
	flag.Parse()
	if err := run(*mode, *spec, *n, *wait); err != nil {
		fmt.Fprintln(os.Stderr, "cpeer:", err)
		if !*keep {
			_ = segment.Remove(*spec)
		}
		os.Exit(1)
	}
	if !*keep {
		_ = segment.Remove(*spec)
	}
}

func run(mode, spec string, n uint64, wait time.Duration) error {
	ctx := context.Background()
	start := time.Now()
	switch mode {
	case "ring-produce", "ring-consume":
		r, err := shmring.Create[interop.Item](spec, 1024)
		if err != nil {
			return err
		}
		defer r.Close()
		fmt.Printf("cpeer: ring %s ready (%s)\n", spec, mode)
		for i := uint64(0); i < n; i++ {
			if mode == "ring-produce" {
				if err := r.Push(ctx, interop.MakeItem(i, uint32(os.Getpid()))); err != nil {
					return err
				}
				continue
			}
			it, err := r.Pop(ctx)
			if err != nil {
				return err
			}
			if it.Seq != i || it.Check != interop.CheckOf(i) {
				return fmt.Errorf("item %d: %+v", i, it)
			}
		}
		if mode == "ring-produce" {
			// Wait until the consumer took everything before removing.
			for r.Len() > 0 {
				time.Sleep(time.Millisecond)
			}
		}
	case "bus-publish":
		b, err := shmbus.Create[interop.Item](spec, 256)
		if err != nil {
			return err
		}
		defer b.Close()
		fmt.Printf("cpeer: bus %s ready, waiting up to %v for a subscriber\n", spec, wait)
		for deadline := time.Now().Add(wait); ; time.Sleep(10 * time.Millisecond) {
			st, err := b.Stats()
			if err != nil {
				return err
			}
			if len(st.Subscribers) > 0 || time.Now().After(deadline) {
				break
			}
		}
		for i := uint64(0); i < n; i++ {
			if err := b.Publish(ctx, interop.MakeItem(i, uint32(os.Getpid()))); err != nil {
				return err
			}
		}
		if err := b.CloseWrites(); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond) // let subscribers drain before removal
	case "map":
		m, err := shmmap.Create[uint64, interop.Item](spec, int(n))
		if err != nil {
			return err
		}
		defer m.Close()
		for k := uint64(0); k < n; k++ {
			if err := m.Put(k*7, interop.MakeItem(k, uint32(os.Getpid()))); err != nil {
				return err
			}
		}
		fmt.Printf("cpeer: map %s holds keys 0, 7, ..., %d\n", spec, (n-1)*7)
	default:
		return fmt.Errorf("unknown -mode %q", mode)
	}
	fmt.Printf("cpeer: %s: %d items in %v\n", mode, n, time.Since(start).Round(time.Millisecond))
	return nil
}
