// Command fanout is one publisher and three subscriber processes on a
// shmbus.Bus, one of them deliberately slow, run once with each overflow
// policy:
//
//   - block: the slow subscriber holds the publisher back; nobody misses
//     anything, and the publisher's rate drops to the slow one's.
//
//   - overwrite: the publisher never waits; the slow subscriber is lapped
//     and told how many messages it missed (ErrLagged), and what it
//     received plus what it missed is exactly what was published.
//
//     go run ./examples/fanout                   # both policies, 20000 messages
//     go run ./examples/fanout -policy overwrite -n 100000
//
// The subscribers are this binary re-executed with -sub. While publishing,
// the parent prints the bus's stats (lag and lapped count per subscriber)
// now and then. The exit status is 0 when every subscriber accounted for
// every message (received + missed = published, in order, none torn), 1
// otherwise.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

// Tick is one message. Sum makes a torn message detectable.
type Tick struct {
	Seq   uint64
	Price uint64
	Qty   uint64
	Sum   uint64
}

func makeTick(seq uint64) Tick {
	t := Tick{Seq: seq, Price: 10_000 + seq%977, Qty: 1 + seq%13}
	t.Sum = t.Seq*0x9e3779b97f4a7c15 ^ t.Price<<7 ^ t.Qty
	return t
}

func (t *Tick) ok() bool { return *t == makeTick(t.Seq) }

func main() {
	sub := flag.String("sub", "", "run as the subscriber with this name (internal)")
	spec := flag.String("spec", "", "bus segment (internal, with -sub)")
	slow := flag.Bool("slow", false, "subscriber sleeps 1ms every 50 messages (internal, with -sub)")
	n := flag.Uint64("n", 20000, "messages to publish per policy")
	policy := flag.String("policy", "both", "block, overwrite or both")
	capacity := flag.Int("cap", 256, "bus capacity (a power of two)")
	flag.Parse()
	if *sub != "" {
		if err := subscriber(*spec, *sub, *slow); err != nil {
			fmt.Fprintf(os.Stderr, "fanout: subscriber %s: %v\n", *sub, err)
			os.Exit(1)
		}
		return
	}
	var policies []string
	switch *policy {
	case "both":
		policies = []string{"block", "overwrite"}
	case "block", "overwrite":
		policies = []string{*policy}
	default:
		fmt.Fprintf(os.Stderr, "fanout: -policy %q: want block, overwrite or both\n", *policy)
		os.Exit(2)
	}
	ok := true
	for _, p := range policies {
		start := time.Now()
		good, err := run(p, *n, *capacity)
		if err != nil {
			fmt.Fprintf(os.Stderr, "fanout: %s: %v\n", p, err)
			os.Exit(1)
		}
		fmt.Printf("%s: done in %v\n", p, time.Since(start).Round(time.Millisecond))
		ok = ok && good
	}
	if !ok {
		fmt.Println("fanout: some subscriber did not account for every message")
		os.Exit(1)
	}
	fmt.Println("fanout: every subscriber accounted for every message")
}
