package main

import (
	"fmt"
	"strings"

	"github.com/shmkit/shmkit/internal/baseline"
)

// allBenches lists every row in run order. Counts are for a full run
// (about a second per row on an idle 2-core machine; a full run shortens
// any row a pilot run projects beyond rowBudget); -quick divides them by
// 10. Pipe rows come first in each group because the others are
// compared with them.
func allBenches() []*bench {
	var bs []*bench
	add := func(b *bench) { bs = append(bs, b) }

	for _, size := range []int{8, 64, 1024} {
		big := size >= 1024
		pick := func(small, large int) int {
			if big {
				return large
			}
			return small
		}
		tput := func(mech, key, procs string, full int, run func(runConfig, int) (outcome, error)) {
			add(&bench{name: fmt.Sprintf("throughput/%s/%dB", key, size), group: groupThroughput,
				mech: mech, size: size, procs: procs, full: full, run: run})
		}
		tput("pipe, write(2) per message", "pipe", "2 procs", pick(1_000_000, 500_000), baselineThroughput(baseline.Pipe, size))
		tput("pipe, 64 KiB bufio batches (stream)", "pipe-buffered", "2 procs", pick(5_000_000, 1_000_000), baselineThroughput(baseline.PipeBuffered, size))
		tput("Unix socketpair, write(2) per message", "unix", "2 procs", pick(1_000_000, 500_000), baselineThroughput(baseline.Unix, size))
		tput("SysV message queue", "msgq", "2 procs", pick(500_000, 300_000), baselineThroughput(baseline.Msgq, size))
		tput("POSIX message queue", "posix-mq", "2 procs", pick(300_000, 200_000), endpointThroughput("posix-mq", size))
		tput("Go channel (in-process bound)", "chan", "goroutines", pick(10_000_000, 2_000_000), chanThroughputFor(size))
		tput("bare per-item ring: slot copy + atomic tail store, tight spin (no library)", "spin-ring", "2 procs", pick(10_000_000, 2_000_000), baselineSpinRing(size))
		tput("shmkit Ring Push/Pop", "ring", "2 procs", pick(10_000_000, 2_000_000), ringThroughput(size, "item"))
		bs[len(bs)-1].anchor = fmt.Sprintf("throughput/spin-ring/%dB", size)
		tput("shmkit Ring Claim/Publish, Peek/Advance (zero-copy)", "ring-batch", "2 procs", pick(20_000_000, 4_000_000), ringThroughput(size, "batch"))
		tput("shmkit ByteRing Write/ReadInto", "bytering", "2 procs", pick(5_000_000, 2_000_000), byteRingThroughput(size))
	}
	// 4 KiB items, the size of the tracker's large-item goal, read in place
	// as shmipc-go's benchmark reader reads them (its figure comes from
	// ../shared/anchors; scripts/anchors.py sets the two side by side).
	add(&bench{name: "throughput/pipe/4096B", group: groupThroughput,
		mech: "pipe, write(2) per message", size: 4096, procs: "2 procs", full: 500_000, run: baselineThroughput(baseline.Pipe, 4096)})
	add(&bench{name: "throughput/ring-push-inplace/4096B", group: groupThroughput,
		mech: "shmkit Ring Push per item; reader PeekWait(1)+Advance, checks both ends in place", size: 4096, procs: "2 procs",
		full: 1_000_000, run: ringThroughput(4096, "inplace")})
	add(&bench{name: "throughput/queue-futex-natural/8B", group: groupThroughput,
		mech: "shmkit Queue (futex) Push per item in a child, Pop per item in this process", size: 8, procs: "1P/parent",
		full: 5_000_000, run: queueNatural("futex"), anchor: "throughput/msgq/8B"})
	for _, backend := range []string{"futex", "sysv"} {
		full := 5_000_000
		if backend == "sysv" {
			full = 1_000_000
		}
		for _, pc := range [][2]int{{1, 1}, {2, 2}} {
			procs := fmt.Sprintf("%dP/%dC", pc[0], pc[1])
			add(&bench{name: fmt.Sprintf("throughput/queue-%s-%dP%dC/64B", backend, pc[0], pc[1]), group: groupThroughput,
				mech: fmt.Sprintf("shmkit Queue (%s backend) Push/Pop", backend), size: 64, procs: procs, full: full,
				run: queueThroughput(backend, pc[0], pc[1])})
		}
	}

	pp := func(key, mech, procs string, full int, run func(runConfig, int) (outcome, error)) {
		b := &bench{name: "pingpong/" + key, group: groupPingPong, mech: mech, size: 8, procs: procs, full: full, run: run}
		if strings.HasPrefix(key, "ring-") {
			// The bare ring pair: the same two cache lines per hand-off
			// with nothing around them (the bare word moves one).
			b.anchor = "pingpong/spin-ring"
		}
		add(b)
	}
	pp("pipe", "pipe pair", "2 procs", 100_000, endpointPingPong("pipe"))
	pp("unix", "Unix socketpair", "2 procs", 100_000, endpointPingPong("unix"))
	pp("msgq", "SysV message queue", "2 procs", 100_000, endpointPingPong("msgq"))
	pp("posix-mq", "POSIX message queues", "2 procs", 100_000, endpointPingPong("posix-mq"))
	pp("chan", "Go channels (in-process bound)", "goroutines", 1_000_000, chanPingPong)
	pp("spin-word", "bare shared word, spinning (floor)", "2 procs", 500_000, baselineWordPingPong(baseline.SpinPingPong))
	pp("spin-ring", "bare ring pair in plain Go: slot + tail per hand-off, spinning (reference)", "2 procs", 500_000, baselineWordPingPong(baseline.SpinRingPingPong))
	pp("futex-word", "bare shared word, futex wait/wake every time", "2 procs", 100_000, baselineWordPingPong(baseline.FutexPingPong))
	pp("ring-spin", "shmkit Ring pair, SpinOnly", "2 procs", 500_000, ringPingPong("spin"))
	pp("ring-park", "shmkit Ring pair, ParkOnly", "2 procs", 100_000, ringPingPong("park"))
	pp("ring-default", "shmkit Ring pair, SpinThenPark (default)", "2 procs", 500_000, ringPingPong("default"))
	pp("queue-futex", "shmkit Queue pair, futex backend", "2 procs", 200_000, queuePingPong("futex"))
	pp("queue-sysv", "shmkit Queue pair, SysV backend", "2 procs", 100_000, queuePingPong("sysv"))

	for _, policy := range []string{"block", "overwrite"} {
		for _, subs := range []int{1, 2, 4} {
			add(&bench{name: fmt.Sprintf("bus/%s-%dsub/64B", policy, subs), group: groupBus,
				mech: fmt.Sprintf("shmkit Bus (%s) Publish/Next", policy), size: 64, procs: fmt.Sprintf("1P/%dS", subs),
				full: 10_000_000, run: busRow(policy, subs)})
		}
	}

	for _, op := range []string{"get", "put", "mixed"} {
		full := map[string]int{"get": 5_000_000, "put": 3_000_000, "mixed": 5_000_000}[op]
		what := map[string]string{"get": "Get", "put": "Put (overwrite)", "mixed": "90% Get / 10% Put"}[op]
		for _, procs := range []int{1, 2} {
			add(&bench{name: fmt.Sprintf("map/%s/%dproc", op, procs), group: groupMap,
				mech: "shmkit Map " + what, procs: plural(procs, "proc"), full: full, run: mapBench(op, procs, mapKeys)})
		}
	}
	for _, op := range []string{"get", "put"} {
		what := map[string]string{"get": "Get", "put": "Put (overwrite)"}[op]
		add(&bench{name: "map/" + op + "-1M/1proc", group: groupMap, mech: "shmkit Map " + what + ", 1 Mi keys, random",
			procs: "1 proc", full: 5_000_000, run: mapBench(op, 1, mapKeysLarge), anchor: "map/go-map-" + op + "-1M/1goroutine"})
		add(&bench{name: "map/go-map-" + op + "-1M/1goroutine", group: groupMap, mech: "Go map " + what + ", 1 Mi keys, random (in-process anchor)",
			procs: "1 goroutine", full: 5_000_000, run: goMapOps(op, mapKeysLarge)})
	}
	add(&bench{name: "map/go-rwmutex-mixed/2goroutines", group: groupMap, mech: "Go map + RWMutex, 90/10 (in-process bound)",
		procs: "2 goroutines", full: 5_000_000, run: goMapMixed(2)})

	add(&bench{name: "mutex/robust/1proc", group: groupMutex, mech: "shmkit sync.Mutex, uncontended", procs: "1 proc", full: 20_000_000, run: lockBench("robust", 1),
		anchor: "mutex/go/1goroutine"})
	add(&bench{name: "mutex/robust/2proc", group: groupMutex, mech: "shmkit sync.Mutex, contended handoff", procs: "2 procs", full: 5_000_000, run: lockBench("robust", 2)})
	add(&bench{name: "mutex/sysv-sem/1proc", group: groupMutex, mech: "SysV semaphore lock (SEM_UNDO), uncontended", procs: "1 proc", full: 1_000_000, run: lockBench("sysv", 1)})
	add(&bench{name: "mutex/sysv-sem/2proc", group: groupMutex, mech: "SysV semaphore lock (SEM_UNDO), contended", procs: "2 procs", full: 1_000_000, run: lockBench("sysv", 2)})
	add(&bench{name: "mutex/go/1goroutine", group: groupMutex, mech: "Go sync.Mutex, uncontended (in-process anchor)", procs: "1 goroutine", full: 20_000_000, run: goMutex(1)})
	add(&bench{name: "mutex/go/2goroutines", group: groupMutex, mech: "Go sync.Mutex (in-process bound)", procs: "2 goroutines", full: 20_000_000, run: goMutex(2)})
	return bs
}

func chanThroughputFor(size int) func(runConfig, int) (outcome, error) {
	switch size {
	case 8:
		return chanThroughput[[8]byte]
	case 64:
		return chanThroughput[[64]byte]
	default:
		return chanThroughput[[1024]byte]
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}
