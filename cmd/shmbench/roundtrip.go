package main

import (
	"time"

	"github.com/shmkit/shmkit/internal/baseline"
)

// timeRoundTrips is how every ping-pong row times its n round trips (rt(i)
// is the i-th), in two halves:
//
//   - the first half times each round trip on its own, with one clock
//     read per round trip (it ends one and starts the next, and counts in
//     it): the p50, p99 and p99.9;
//   - the second half runs untimed but for baseline.Stopwatch's reads, one
//     per 1000 round trips: the mean and the best 1k.
//
// Why two: a clock read costs 15-25 ns here, a tenth of a ring's round
// trip, and the baseline rows and the C anchors time whole loops. So the
// mean and the best 1k compare like with like against them ("vs anchor"),
// and the percentiles still see every round trip's own time.
func timeRoundTrips(n int, rt func(i uint64) error) (outcome, error) {
	timed := n / 2
	rtts := make([]time.Duration, timed)
	start := time.Now()
	prev := nanotime()
	for i := range uint64(timed) {
		if err := rt(i); err != nil {
			return outcome{}, err
		}
		now := nanotime()
		rtts[i] = time.Duration(now - prev)
		prev = now
	}
	var sw baseline.Stopwatch
	sw.Start()
	for i := uint64(timed); i < uint64(n); i++ {
		if err := rt(i); err != nil {
			return outcome{}, err
		}
		sw.Tick()
	}
	untimed := sw.Elapsed()
	return outcome{elapsed: time.Since(start), rtts: rtts, best: sw.Best(),
		mean: untimed / time.Duration(max(n-timed, 1))}, nil
}
