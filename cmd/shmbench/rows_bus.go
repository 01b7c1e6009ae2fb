package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/shmkit/shmkit/shmbus"
	"github.com/shmkit/shmkit/shmring"
)

// shmbus rows: the parent publishes 64-byte messages on a Bus, each of 1,
// 2 or 4 subscriber children receives them all. One row has two phases
// with the same processes:
//
//  1. throughput: the parent publishes n messages as fast as it can (a
//     Block bus holds it back to the slowest subscriber; an Overwrite bus
//     never does, and a subscriber that falls a capacity behind is told
//     how many it missed). Each subscriber reports, when it has the last
//     message, how many it received and the time (nanotime: the one
//     CLOCK_MONOTONIC of the machine). Its throughput is received / (its
//     end - the parent's start); the row's msgs/s is the slowest
//     subscriber's.
//  2. latency: the parent publishes one message at a time, stamped with
//     nanotime just before Publish; each subscriber subtracts the stamp
//     from nanotime just after Next returns and sends the difference back
//     on its own acknowledgement Ring, and the parent publishes the next
//     message only when every subscriber has acknowledged. So every
//     message finds its subscribers waiting in Next, as the Ring ping-pong
//     finds its peers waiting in Pop: the publish→receive p50 compares with
//     half the ring's round trip ("ring one-way" = pingpong/ring-default
//     p50 / 2) of the same run.
//
// Segments are memfds (fd 5: the bus; fd 6+j: subscriber j's ack ring).

// busMsg is a 64-byte message: sequence number and publish time.
type busMsg struct {
	Seq uint64
	TS  int64 // nanotime at Publish (latency phase only)
	_   [48]byte
}

const (
	tagTime      = 'T' // a subscriber's end of the throughput phase; value: nanotime
	busAckCap    = 16
	busLatencyOf = 100 // latency rounds: a hundredth of the throughput count
)

// Reference rows of the bus goals (see addRatios).
const (
	busRingTputRef = "throughput/ring/64B"
	busRingRTTRef  = "pingpong/ring-default"
)

var busPolicies = map[string]shmbus.Overflow{"block": shmbus.Block, "overwrite": shmbus.Overwrite}

// args: n index
var _ = registerPeer("shmbench-bus-sub", func(m member, a []string) error {
	n, idx := uint64(atoi(a[0])), atoi(a[1])
	bus, err := shmbus.Open[busMsg](m.fdSpec(0), shmbus.WithPopulate())
	if err != nil {
		return err
	}
	defer bus.Close()
	sub, err := bus.Subscribe()
	if err != nil {
		return err
	}
	defer sub.Close()
	ack, err := shmring.Open[item8](m.fdSpec(1 + idx))
	if err != nil {
		return err
	}
	defer ack.Close()
	if _, err := ack.Claim(0); err != nil { // take the producer role before "ready"
		return err
	}
	if err := m.ready(); err != nil {
		return err
	}
	ctx := context.Background()

	// Phase 1: every message up to n-1 (received, or missed on an
	// Overwrite bus).
	var got, missed uint64
	for {
		v, err := sub.Next(ctx)
		if err != nil {
			var lag *shmbus.LaggedError
			if errors.As(err, &lag) {
				missed += lag.Missed
				continue
			}
			return err
		}
		if v.Seq != got+missed {
			return fmt.Errorf("message %d has sequence %d", got+missed, v.Seq)
		}
		got++
		if v.Seq == n-1 {
			break
		}
	}
	end := nanotime()
	if err := m.report2(tagDone, got, tagTime, uint64(end)); err != nil {
		return err
	}

	// Phase 2: one message at a time until CloseWrites.
	for want := n; ; want++ {
		v, err := sub.Next(ctx)
		now := nanotime()
		if errors.Is(err, shmbus.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		if v.Seq != want {
			return fmt.Errorf("latency message %d has sequence %d", want, v.Seq)
		}
		if err := ack.Push(ctx, item8{Seq: uint64(max(now-v.TS, 0))}); err != nil {
			return err
		}
	}
})

// busOutcome is what a bus row measures besides the elapsed time.
type busOutcome struct {
	perSub    []float64       // messages received per second, per subscriber
	delivered float64         // received / (published × subscribers)
	latency   []time.Duration // publish→receive, every subscriber, every round
}

func busRow(policy string, subs int) func(runConfig, int) (outcome, error) {
	return func(cfg runConfig, n int) (outcome, error) {
		bus, err := shmbus.Create[busMsg]("memfd:"+uniqueName("bus"), ringCap,
			shmbus.WithOverflow(busPolicies[policy]), shmbus.WithPopulate())
		if err != nil {
			return outcome{}, err
		}
		defer bus.Close()
		files := []*os.File{bus.Segment().Raw().File()}
		acks := make([]*shmring.Ring[item8], subs)
		args := make([][]string, subs)
		for j := range acks {
			a, err := shmring.Create[item8]("memfd:"+uniqueName("bus-ack"), busAckCap)
			if err != nil {
				return outcome{}, err
			}
			defer a.Close()
			acks[j] = a
			files = append(files, a.Segment().Raw().File())
			args[j] = []string{itoa(n), itoa(j)}
		}
		t, err := startTeam(cfg, "shmbench-bus-sub", files, args...)
		if err != nil {
			return outcome{}, err
		}
		if err := t.ready(); err != nil {
			return outcome{}, t.fail(err)
		}
		ctx := context.Background()

		// Phase 1: throughput.
		start := nanotime()
		if err := t.start(); err != nil {
			return outcome{}, t.fail(err)
		}
		for i := range uint64(n) {
			if err := bus.Publish(ctx, busMsg{Seq: i}); err != nil {
				return outcome{}, t.fail(err)
			}
		}
		res := &busOutcome{}
		var slowest int64
		var received uint64
		for range subs {
			// report2's two records arrive together (one write).
			got, err := t.expect(tagDone, 1)
			if err != nil {
				return outcome{}, t.fail(err)
			}
			end, err := t.expect(tagTime, 1)
			if err != nil {
				return outcome{}, t.fail(err)
			}
			d := max(int64(end)-start, 1)
			slowest = max(slowest, d)
			received += got
			res.perSub = append(res.perSub, float64(got)/(float64(d)/1e9))
		}
		res.delivered = float64(received) / float64(uint64(n)*uint64(subs))

		// Phase 2: publish→receive latency, one message at a time.
		rounds := max(n/busLatencyOf, 100)
		res.latency = make([]time.Duration, 0, rounds*subs)
		deadline := time.Now().Add(rowBudget)
		for i := range rounds {
			if i%256 == 255 && time.Now().After(deadline) {
				break
			}
			if err := bus.Publish(ctx, busMsg{Seq: uint64(n + i), TS: nanotime()}); err != nil {
				return outcome{}, t.fail(err)
			}
			for _, a := range acks {
				v, err := a.Pop(ctx)
				if err != nil {
					return outcome{}, t.fail(err)
				}
				res.latency = append(res.latency, time.Duration(v.Seq))
			}
		}
		if err := bus.CloseWrites(); err != nil {
			return outcome{}, t.fail(err)
		}
		out := outcome{elapsed: time.Duration(slowest), bus: res}
		if res.delivered < 1 {
			out.note = fmt.Sprintf("subscribers received %.1f%% of the messages (Overwrite: the rest were reported missed)", 100*res.delivered)
		}
		return out, t.wait()
	}
}

// summarizeSamples computes percentiles of latency samples.
func summarizeSamples(ds []time.Duration) *Latency {
	if len(ds) == 0 {
		return nil
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return &Latency{
		Mean: float64(sum.Nanoseconds()) / float64(len(s)),
		P50:  float64(percentile(s, 0.50).Nanoseconds()),
		P99:  float64(percentile(s, 0.99).Nanoseconds()),
		P999: float64(percentile(s, 0.999).Nanoseconds()),
		Max:  float64(s[len(s)-1].Nanoseconds()),
		Best: float64(bestChunk(ds, 1000).Nanoseconds()),
	}
}

// busGoals are the goals for the 2-subscriber rows.
const (
	busGoalSubs    = 2
	busGoalTput    = 0.5 // per-subscriber msgs/s ≥ 0.5 × ring Push/Pop
	busGoalOneWay  = 1.2 // publish→receive p50 ≤ 1.2 × ring RTT/2
	busGoalsString = "goals with 2 subscribers: per-subscriber msgs/s ≥ 0.50× ring Push/Pop, publish→receive p50 ≤ 1.20× ring RTT/2"
)

// busComparison is the lines printed under the bus table: the ring
// references of this run and whether the goals are met.
func busComparison(all []Row) []string {
	byName := map[string]Row{}
	for _, r := range all {
		byName[r.Name] = r
	}
	var lines []string
	tput, okT := byName[busRingTputRef]
	rtt, okR := byName[busRingRTTRef]
	ref := "ring references in this run:"
	if okT && tput.PerSec > 0 {
		ref += fmt.Sprintf(" %s %s msgs/s;", busRingTputRef, rate(tput.PerSec))
	} else {
		ref += fmt.Sprintf(" %s not run;", busRingTputRef)
	}
	if okR && rtt.RTT != nil && rtt.RTT.P50 > 0 {
		ref += fmt.Sprintf(" %s p50 RTT %s, one-way %s", busRingRTTRef, ns(rtt.RTT.P50), ns(rtt.RTT.P50/2))
	} else {
		ref += fmt.Sprintf(" %s not run", busRingRTTRef)
	}
	lines = append(lines, ref, busGoalsString+":")
	for _, r := range all {
		if r.Group != groupBus || r.Subscribers != busGoalSubs || r.Error != "" || r.Skipped {
			continue
		}
		verdict := func(v, goal float64, atLeast bool) string {
			switch {
			case v <= 0:
				return "no reference"
			case atLeast == (v >= goal):
				return "met"
			}
			return "MISSED"
		}
		line := fmt.Sprintf("  %s: throughput %s (%s), p50 %s (%s)", r.Name,
			ratio(r.VsRing), verdict(r.VsRing, busGoalTput, true),
			ratio(r.VsRingOneWay), verdict(r.VsRingOneWay, busGoalOneWay, false))
		// The fastest 1000 consecutive samples, on both sides: what the
		// latencies are when every process has a CPU (see Latency.Best).
		// The bus's are clock-stamped one by one, the ring's untimed: the
		// bus side carries two clock reads the ring side does not.
		if okR && rtt.RTT != nil && rtt.RTT.Best > 0 && r.PubRecv != nil && r.PubRecv.Best > 0 {
			line += fmt.Sprintf("; best 1k %s vs ring best 1k RTT/2 %s: %s", ns(r.PubRecv.Best), ns(rtt.RTT.Best/2), ratio(r.PubRecv.Best/(rtt.RTT.Best/2)))
		}
		lines = append(lines, line)
	}
	return lines
}
