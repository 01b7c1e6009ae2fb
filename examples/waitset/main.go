// Command waitset shows one consumer draining three rings fed by three
// processes, waiting on all of them with one sync.WaitSet (one futex_waitv:
// no goroutine per ring, no polling while idle).
//
// Run without arguments, it creates three rings, starts three producer
// processes (itself, with -produce), each pushing numbered items at its own
// rate, and drains them, checking that every ring's items arrive complete
// and in order:
//
//	go run ./examples/waitset
//	go run ./examples/waitset -n 1000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/shmkit/shmkit/shmring"
	shsync "github.com/shmkit/shmkit/sync"
)

func main() {
	produce := flag.String("produce", "", "run as a producer pushing to this ring spec (internal)")
	n := flag.Int("n", 500, "items per producer")
	pause := flag.Duration("pause", 0, "pause between a producer's items (internal)")
	flag.Parse()
	var err error
	if *produce != "" {
		err = producer(*produce, *n, *pause)
	} else {
		err = consumer(*n)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "waitset:", err)
		os.Exit(1)
	}
}

// producer pushes 1..n to the ring at spec, blocking while it is full.
func producer(spec string, n int, pause time.Duration) error {
	r, err := shmring.Open[uint64](spec)
	if err != nil {
		return err
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 1; i <= n; i++ {
		if err := r.Push(ctx, uint64(i)); err != nil {
			return fmt.Errorf("push %d: %w", i, err)
		}
		if pause > 0 {
			time.Sleep(pause)
		}
	}
	return nil
}

// consumer creates the rings, starts the producers and drains the rings
// through one WaitSet.
func consumer(n int) error {
	pauses := []time.Duration{0, 200 * time.Microsecond, 2 * time.Millisecond}
	rings := make([]*shmring.Ring[uint64], len(pauses))
	srcs := make([]shsync.Waitable, len(pauses))
	for i := range rings {
		spec := fmt.Sprintf("posix:/shmkit-example-waitset-%d-%d", os.Getpid(), i)
		r, err := shmring.Create[uint64](spec, 64)
		if err != nil {
			return err
		}
		defer shmring.Remove(spec)
		defer r.Close()
		rings[i], srcs[i] = r, r
	}
	ws, err := shsync.NewWaitSet(srcs...)
	if err != nil {
		return err
	}
	defer ws.Close()

	self, err := os.Executable()
	if err != nil {
		return err
	}
	var procs []*exec.Cmd
	for i, r := range rings {
		cmd := exec.Command(self, "-produce", r.Segment().Raw().Spec().String(),
			"-n", strconv.Itoa(n), "-pause", pauses[i].String())
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return err
		}
		defer cmd.Process.Kill()
		procs = append(procs, cmd)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	next := make([]uint64, len(rings))
	wakes := make([]int, len(rings))
	remaining := n * len(rings)
	for remaining > 0 {
		i, err := ws.Wait(ctx) // parks on all three rings at once
		if err != nil {
			return fmt.Errorf("wait: %w (%d items missing)", err, remaining)
		}
		wakes[i]++
		for {
			v, ok := rings[i].TryPop()
			if !ok {
				break
			}
			if v != next[i]+1 {
				return fmt.Errorf("ring %d: got item %d after %d", i, v, next[i])
			}
			next[i] = v
			remaining--
		}
	}
	for i, cmd := range procs {
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("producer %d: %w", i, err)
		}
	}
	for i := range rings {
		fmt.Printf("ring %d: %d items in order (%d wakes, producer pause %v)\n", i, next[i], wakes[i], pauses[i])
	}
	fmt.Printf("drained %d items from %d producers\n", n*len(rings), len(rings))
	return nil
}
