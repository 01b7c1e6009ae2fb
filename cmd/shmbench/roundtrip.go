package main

import (
	"time"

	"github.com/shmkit/shmkit/internal/baseline"
)

// timeRoundTrips is how every ping-pong row times its n round trips (rt(i)
// is the i-th). After a warm-up (a tenth of n, at most one block, counted
// in neither figure) it alternates blocks of roundTripBlock round trips:
//
//   - timed blocks time each round trip on its own, with one clock read per
//     round trip (it ends one and starts the next, and counts in it): the
//     p50, p99 and p99.9;
//   - untimed blocks read the clock only at their ends: the mean, and the
//     best 1k (the fastest full untimed block).
//
// Why two kinds: a clock read costs 15-25 ns here, a tenth of a ring's
// round trip, and the baseline rows and the C anchors time whole loops, so
// the mean and the best 1k compare like with like against them ("vs
// anchor"). Why alternate: on a machine whose speed swings from one minute
// to the next, both figures then come from the same minutes. The best 1k
// is a minimum over half as many blocks as a baseline row's over the same
// n, which favours the baseline a little.
func timeRoundTrips(n int, rt func(i uint64) error) (outcome, error) {
	warm := min(n/10, roundTripBlock)
	// Every sample slot is touched before the clock starts: a fresh page
	// faulted in mid-run would be a round trip's tail.
	rtts := make([]time.Duration, (n-warm)/2+roundTripBlock)
	for i := range rtts {
		rtts[i] = -1
	}
	rtts = rtts[:0]
	var untimed baseline.Blocks
	start := time.Now()
	i := uint64(0)
	for ; i < uint64(warm); i++ {
		if err := rt(i); err != nil {
			return outcome{}, err
		}
	}
	for block := 0; i < uint64(n); block++ {
		end := min(i+roundTripBlock, uint64(n))
		if block%2 == 0 {
			prev := nanotime()
			for ; i < end; i++ {
				if err := rt(i); err != nil {
					return outcome{}, err
				}
				now := nanotime()
				rtts = append(rtts, time.Duration(now-prev))
				prev = now
			}
			continue
		}
		ops := int(end - i)
		t0 := nanotime()
		for ; i < end; i++ {
			if err := rt(i); err != nil {
				return outcome{}, err
			}
		}
		untimed.Add(time.Duration(nanotime()-t0), ops)
	}
	// With no full untimed block, the best is the mean of the part.
	return outcome{elapsed: time.Since(start), rtts: rtts, mean: untimed.Mean(), best: untimed.Best()}, nil
}

// roundTripBlock is timeRoundTrips' block: internal/baseline's chunk, so
// both kinds of row report the best 1k over blocks of the same size (and
// the untimed blocks are summed by the same baseline.Blocks).
const roundTripBlock = baseline.ChunkOps
