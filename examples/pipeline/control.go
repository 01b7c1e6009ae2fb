package main

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// maxTransforms bounds -stages: the control block has one counter line per
// process.
const maxTransforms = 16

// Stage states, in stageCounters.State.
const (
	stateStarting = iota
	stateAttached // opened every segment it needs
	stateDone     // saw the end marker and every check passed
	stateFailed   // a check failed or an error occurred
)

// stageCounters is one process's line in the control block: written by that
// process only, read by the parent for the progress line. Each sits on its
// own 128-byte line so that stages counting at full speed do not slow each
// other down by sharing a cache line.
type stageCounters struct {
	Items atomic.Uint64 // items passed on (source: published, sink: checked)
	Bad   atomic.Uint64 // items that failed a check in this stage
	State atomic.Uint32
	_     [128 - 20]byte
}

// control is the pipeline's shared control block, one layout.Value that the
// parent creates and every stage opens. Stage[0] is the source, Stage[k] the
// k-th transform, Stage[stages+1] the sink.
type control struct {
	Stage [maxTransforms + 2]stageCounters

	// Written by the sink before it stores stateDone or stateFailed in its
	// State (the parent reads them after the sink has exited).
	Received   uint64 // items that reached the sink
	OutOfOrder uint64 // items whose Seq was not the next expected one
	BadSum     uint64 // items whose checksum did not match
	BadPayload uint64 // items whose payload was not transformed exactly once per stage
	EndOK      uint32 // 1 if the end marker's count and xor matched what arrived
	_          uint32
	FirstStamp int64               // CLOCK_MONOTONIC ns: the source's stamp of the first item
	LastSeen   int64               // CLOCK_MONOTONIC ns: when the sink saw the end marker
	Hist       [histBuckets]uint64 // source-to-sink latency, ns
}

// The stages stamp items with CLOCK_MONOTONIC, which on Linux is one clock
// for the whole system, so the sink can subtract the source's stamp from its
// own reading. Go's time.Now carries a monotonic reading too, but relative to
// the process's start, so it means nothing in another process; and
// unix.ClockGettime is a real system call, too slow for every item. So each
// process reads CLOCK_MONOTONIC once at start, pairs it with a time.Time, and
// from then on measures from that pair with time.Since (vDSO, ~20 ns).
var (
	clockBase   time.Time
	clockBaseNs int64
)

func initClock() error {
	best := time.Duration(1 << 62)
	for range 32 {
		var ts unix.Timespec
		t0 := time.Now()
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			return err
		}
		t1 := time.Now()
		// Keep the tightest bracket: its midpoint is the best estimate of
		// when the kernel read the clock.
		if d := t1.Sub(t0); d < best {
			best = d
			clockBase = t0.Add(d / 2)
			clockBaseNs = ts.Nano()
		}
	}
	return nil
}

// monoNow returns CLOCK_MONOTONIC in nanoseconds.
func monoNow() int64 { return clockBaseNs + int64(time.Since(clockBase)) }
