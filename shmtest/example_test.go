package shmtest_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	"github.com/shmkit/shmkit/shmtest"
)

// counters is the shared state of the example: one value in a segment.
type counters struct {
	Done atomic.Uint64
}

// creator creates the counters segment args[0].
var creator = shmtest.Register("example-creator", func(args []string) error {
	v, err := layout.CreateValue[counters](args[0])
	if err != nil {
		return err
	}
	return v.Close()
})

// worker counts work items in the segment args[0] forever, recording each
// in the ledger args[1] as producer args[2]: "pushing" before the shared
// increment, "pushed" after it.
var worker = shmtest.Register("example-worker", func(args []string) error {
	v, err := layout.OpenValue[counters](args[0])
	if err != nil {
		return err
	}
	l, err := shmtest.OpenLedger(args[1])
	if err != nil {
		return err
	}
	producer, _ := strconv.Atoi(args[2])
	for seq := uint64(0); ; seq++ {
		if err := l.Pushing(uint32(producer), seq); err != nil {
			return err
		}
		v.Ptr().Done.Add(1)
		if err := l.Pushed(uint32(producer), seq); err != nil {
			return err
		}
	}
})

// A crash test of a layout.Value: a creator SIGKILLed inside layout's
// initialization window, then workers SIGKILLed at random moments, checked
// against a ledger.
func Example() {
	dir, err := os.MkdirTemp("", "shmtest-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	spec := "file:" + filepath.Join(dir, "counters")

	// 1. Kill the creator exactly inside its init window: openers must get
	// ErrNotReady naming the dead creator, not hang and not see garbage.
	p, err := creator.Launch(shmtest.Args(spec), shmtest.KillAt("layout.initializing", 1))
	if err != nil {
		panic(err)
	}
	_ = p.Wait(time.Minute)
	_, err = layout.OpenValue[counters](spec)
	fmt.Println("creator killed at its crash point:", p.Killed())
	fmt.Println("open reports a dead creator:", errors.Is(err, layout.ErrNotReady))

	// 2. Remove the half-made segment and create it properly.
	_ = segment.Remove(spec)
	p, _ = creator.Launch(shmtest.Args(spec))
	fmt.Println("creator restarted:", p.Wait(time.Minute) == nil)

	// 3. Three workers in turn, each SIGKILLed at a random moment.
	ledger, err := shmtest.OpenLedger(filepath.Join(dir, "ledger"))
	if err != nil {
		panic(err)
	}
	defer ledger.Close()
	for i := range 3 {
		w, _ := worker.Launch(shmtest.Args(spec, ledger.Path(), strconv.Itoa(i)), shmtest.KillWithin(200*time.Millisecond))
		_ = w.Wait(time.Minute)
		if !w.Killed() {
			fmt.Println("worker exited by itself:", w.Output())
		}
	}

	// 4. The shared count must be every completed increment, plus at most
	// the one in flight in each killed worker.
	entries, err := ledger.Entries()
	if err != nil {
		panic(err)
	}
	var pushing, pushed uint64
	for _, e := range entries {
		switch e.Op {
		case shmtest.Pushing:
			pushing++
		case shmtest.Pushed:
			pushed++
		}
	}
	v, err := layout.OpenValue[counters](spec)
	if err != nil {
		panic(err)
	}
	defer v.Close()
	done := v.Ptr().Done.Load()
	fmt.Println("count matches the ledger:", pushed <= done && done <= pushing && pushing-pushed <= 3)

	// Output:
	// creator killed at its crash point: true
	// open reports a dead creator: true
	// creator restarted: true
	// count matches the ledger: true
}

// Checking a ledger: one pushed item was never popped.
func ExampleDelivered() {
	entries := []shmtest.Entry{
		{Op: shmtest.Pushed, Item: shmtest.Item{Producer: 1, Seq: 0}},
		{Op: shmtest.Pushed, Item: shmtest.Item{Producer: 1, Seq: 1}},
		{Op: shmtest.Popped, Item: shmtest.Item{Producer: 1, Seq: 0}},
	}
	fmt.Println(shmtest.RunChecks(entries, shmtest.ExactlyOnce()))
	fmt.Println(shmtest.RunChecks(entries, shmtest.AtMostLost(1)))
	// Output:
	// shmtest: delivery: 1 pushed items never popped (at most 0 allowed): 1/1
	// <nil>
}
