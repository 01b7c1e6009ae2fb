package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmkit/shmkit/internal/baseline"
)

// Groups of rows; each has its own table section and chart.
const (
	groupThroughput = "throughput"
	groupPingPong   = "pingpong"
	groupBus        = "bus"
	groupMap        = "map"
	groupMutex      = "mutex"
)

// bench is one row to measure.
type bench struct {
	name  string // unique, matched by -only: "throughput/ring/64B"
	group string
	mech  string // what is measured, for humans: "shmkit Ring[T] Push/Pop"
	size  int    // payload bytes (0: not a message row)
	procs string // who runs: "1P/1C", "2 procs", "goroutines"
	full  int    // operation count of a full run
	// anchor names the row this one is set beside in "vs anchor" (the
	// outside measure the tracker's goals are stated against: a Go map,
	// the bare-word spin floor, SysV msgq), or is empty.
	anchor string
	// run performs n operations and reports how long they took.
	run func(cfg runConfig, n int) (outcome, error)
}

// outcome is what a bench's run returns.
type outcome struct {
	elapsed time.Duration
	rtts    []time.Duration // ping-pong: the timed blocks' round trips (timeRoundTrips)
	// meanOnly: a ping-pong whose round trips were not timed one by one
	// (internal/baseline's word ping-pong reports mean and best chunk).
	meanOnly bool
	// best and mean: a ping-pong's best 1k and mean round trip, from its
	// untimed blocks (see timeRoundTrips); a zero mean means elapsed over
	// all n.
	best time.Duration
	mean time.Duration
	note string
	bus  *busOutcome // bus rows
}

// errSkip marks a row that cannot run here (a missing kernel feature);
// the row is reported as skipped with the reason.
var errSkip = errors.New("skipped")

// Row is one line of the report.
type Row struct {
	Name      string  `json:"name"`
	Group     string  `json:"group"`
	Mechanism string  `json:"mechanism"`
	Size      int     `json:"size_bytes,omitempty"`
	Procs     string  `json:"procs"`
	Ops       int     `json:"ops"`
	Seconds   float64 `json:"seconds"`
	// PerSec is messages, items, round trips or operations per second (for
	// ping-pong rows over the whole row, the timed blocks' clock reads
	// included: not 1/RTT.Mean).
	PerSec float64 `json:"per_sec"`
	// MBPerSec is payload megabytes (1e6) per second, for message rows.
	MBPerSec float64 `json:"mb_per_sec,omitempty"`
	// RTT percentiles in nanoseconds (ping-pong rows).
	RTT *Latency `json:"rtt_ns,omitempty"`
	// CPUSeconds is user+system time of shmbench and its children over the row.
	CPUSeconds float64 `json:"cpu_seconds"`
	// CPUPerOpNs is CPUSeconds per operation (round trip for ping-pong).
	CPUPerOpNs float64 `json:"cpu_ns_per_op"`
	// VsPipe is how many times better than the pipe reference (see package doc).
	VsPipe float64 `json:"vs_pipe,omitempty"`
	// PipeRef names the row VsPipe compares with.
	PipeRef string `json:"pipe_ref,omitempty"`
	// Anchor names the row of the same run this one is measured against
	// (see bench.anchor), and VsAnchor is how many times better than it
	// this row is, computed like VsPipe (rate ratio, or anchor p50 RTT /
	// this p50 RTT): 0.5 is half the anchor's rate or twice its RTT.
	Anchor   string  `json:"anchor,omitempty"`
	VsAnchor float64 `json:"vs_anchor,omitempty"`
	// Bus rows: subscriber processes, each one's msgs/s (PerSec is the
	// slowest's), the fraction of messages they received (below 1 only on
	// an Overwrite bus), publish→receive latency, and the ratios to the
	// ring rows of the same run: VsRing = PerSec / ring Push/Pop msgs/s
	// (higher is better), VsRingOneWay = latency p50 / (ring ping-pong p50
	// RTT / 2) (lower is better).
	Subscribers  int       `json:"subscribers,omitempty"`
	PerSubPerSec []float64 `json:"per_subscriber_per_sec,omitempty"`
	Delivered    float64   `json:"delivered_fraction,omitempty"`
	PubRecv      *Latency  `json:"publish_receive_ns,omitempty"`
	VsRing       float64   `json:"vs_ring_throughput,omitempty"`
	VsRingOneWay float64   `json:"p50_vs_ring_one_way,omitempty"`
	Skipped      bool      `json:"skipped,omitempty"`
	Error        string    `json:"error,omitempty"`
	Note         string    `json:"note,omitempty"`
}

// Latency summarizes times in nanoseconds: round trips (Row.RTT) or
// one-way bus latencies (Row.PubRecv). Best is the mean of the fastest 1000
// consecutive ones: on a busy machine, an estimate of the cost when both
// sides had a CPU. In Row.RTT, Mean and Best come from round trips timed
// without a clock read each, the percentiles from round trips timed one by
// one (see timeRoundTrips); PubRecv's are all clock-stamped samples.
type Latency struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50,omitempty"`
	P99  float64 `json:"p99,omitempty"`
	P999 float64 `json:"p999,omitempty"`
	Max  float64 `json:"max,omitempty"`
	Best float64 `json:"best_chunk_mean,omitempty"`
}

// Report is the whole run.
type Report struct {
	Machine  Machine   `json:"machine"`
	Quick    bool      `json:"quick"`
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
	LoadEnd  string    `json:"loadavg_end"`
	Rows     []Row     `json:"rows"`
	Failed   int       `json:"failed"`
	Skipped  int       `json:"skipped"`
	Commands string    `json:"command"`
	// ChildStartCPUms is the CPU time one child costs to start and exit
	// (re-exec of shmbench, runtime and package init), measured at the
	// start of the run. Every cross-process row's CPU includes it once per
	// child: negligible in a full run, not in -quick.
	ChildStartCPUms float64 `json:"child_start_cpu_ms"`
}

// Machine describes where the numbers come from.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	GOARCH    string `json:"goarch"`
	LoadStart string `json:"loadavg_start"`
}

func describeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), GOARCH: runtime.GOARCH, LoadStart: loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			k, v, ok := strings.Cut(line, ":")
			if ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	return m
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// cpuTime is user+system time of this process plus its reaped children.
func cpuTime() time.Duration {
	var total time.Duration
	for _, who := range []int{unix.RUSAGE_SELF, unix.RUSAGE_CHILDREN} {
		var ru unix.Rusage
		if unix.Getrusage(who, &ru) == nil {
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return total
}

// run measures every bench in order.
func run(cfg runConfig, benches []*bench, prog *progress) Report {
	rep := Report{Machine: describeMachine(), Quick: cfg.quick, Started: time.Now().UTC(), Commands: strings.Join(os.Args, " ")}
	rep.ChildStartCPUms = childStartCPU().Seconds() * 1e3
	t0 := time.Now()
	for i, b := range benches {
		if interrupted.Load() {
			break
		}
		prog.start(i, b.name)
		row := measure(cfg, b)
		prog.done(i, row)
		switch {
		case row.Skipped:
			rep.Skipped++
		case row.Error != "":
			rep.Failed++
		}
		rep.Rows = append(rep.Rows, row)
	}
	prog.finish()
	rep.Seconds = time.Since(t0).Seconds()
	rep.LoadEnd = loadAvg()
	addRatios(rep.Rows)
	return rep
}

// rowBudget bounds a full run's row: a slow mechanism (or a busy machine)
// gets fewer operations rather than minutes.
const rowBudget = 2 * time.Second

func measure(cfg runConfig, b *bench) Row {
	row := Row{Name: b.name, Group: b.group, Mechanism: b.mech, Size: b.size, Procs: b.procs, Anchor: b.anchor}
	n := cfg.count(b.full)
	if !cfg.quick {
		// Pilot run (discarded; it also warms up): shrink n if the row
		// would take longer than rowBudget.
		pilot := max(n/20, 200)
		if out, err := b.run(cfg, pilot); err == nil && out.elapsed > 0 {
			if projected := time.Duration(float64(out.elapsed) * float64(n) / float64(pilot)); projected > rowBudget {
				n = max(pilot, int(float64(pilot)*float64(rowBudget)/float64(out.elapsed)))
				row.Note = fmt.Sprintf("count cut from %d to %d to fit %v", cfg.count(b.full), n, rowBudget)
			}
		}
	}
	runtime.GC() // garbage from the previous row is not this row's cost
	cpu0 := cpuTime()
	out, err := b.run(cfg, n)
	cpu := cpuTime() - cpu0
	if out.note != "" {
		row.Note = strings.TrimPrefix(row.Note+"; "+out.note, "; ")
	}
	if err != nil {
		if errors.Is(err, errSkip) {
			row.Skipped = true
			row.Note = strings.TrimSuffix(err.Error(), ": "+errSkip.Error())
		} else {
			row.Error = err.Error()
		}
		return row
	}
	if out.elapsed <= 0 {
		row.Error = "no time measured"
		return row
	}
	row.Ops = n
	row.Seconds = out.elapsed.Seconds()
	row.PerSec = float64(n) / row.Seconds
	if bo := out.bus; bo != nil {
		row.Subscribers = len(bo.perSub)
		row.PerSubPerSec = bo.perSub
		row.PerSec = slices.Min(bo.perSub)
		row.Delivered = bo.delivered
		row.PubRecv = summarizeSamples(bo.latency)
	}
	if b.size > 0 && (b.group == groupThroughput || b.group == groupBus) {
		row.MBPerSec = row.PerSec * float64(b.size) / 1e6
	}
	row.CPUSeconds = cpu.Seconds()
	row.CPUPerOpNs = float64(cpu.Nanoseconds()) / float64(n)
	if b.group == groupPingPong {
		row.RTT = summarize(out, n)
	}
	return row
}

// summarize computes the RTT percentiles of a ping-pong outcome.
func summarize(out outcome, n int) *Latency {
	l := &Latency{Mean: float64(out.elapsed.Nanoseconds()) / float64(n), Best: float64(out.best.Nanoseconds())}
	if out.mean > 0 {
		l.Mean = float64(out.mean.Nanoseconds())
	}
	if out.meanOnly || len(out.rtts) == 0 {
		return l
	}
	s := slices.Clone(out.rtts)
	slices.Sort(s)
	l.P50 = float64(percentile(s, 0.50).Nanoseconds())
	l.P99 = float64(percentile(s, 0.99).Nanoseconds())
	l.P999 = float64(percentile(s, 0.999).Nanoseconds())
	l.Max = float64(s[len(s)-1].Nanoseconds())
	return l
}

// percentile returns the q-quantile of sorted (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// bestChunk is the smallest mean over chunk consecutive samples (the mean
// of all if there are fewer).
func bestChunk(ds []time.Duration, chunk int) time.Duration {
	if len(ds) < chunk {
		var sum time.Duration
		for _, d := range ds {
			sum += d
		}
		return sum / time.Duration(max(len(ds), 1))
	}
	best := time.Duration(1<<63 - 1)
	for i := 0; i+chunk <= len(ds); i += chunk {
		var sum time.Duration
		for _, d := range ds[i : i+chunk] {
			sum += d
		}
		best = min(best, sum/time.Duration(chunk))
	}
	return best
}

// pipeRef names the row a row's "vs pipe" compares with.
func pipeRef(r Row) string {
	switch r.Group {
	case groupThroughput:
		return fmt.Sprintf("throughput/pipe/%dB", r.Size)
	case groupPingPong:
		return "pingpong/pipe"
	case groupBus:
		return fmt.Sprintf("throughput/pipe/%dB", r.Size)
	default:
		return "throughput/pipe/8B"
	}
}

func addRatios(rows []Row) {
	byName := map[string]*Row{}
	for i := range rows {
		byName[rows[i].Name] = &rows[i]
	}
	for i := range rows {
		r := &rows[i]
		if r.Group == groupBus && r.Error == "" && !r.Skipped {
			if t := byName[busRingTputRef]; t != nil && t.PerSec > 0 {
				r.VsRing = r.PerSec / t.PerSec
			}
			if p := byName[busRingRTTRef]; p != nil && p.RTT != nil && p.RTT.P50 > 0 && r.PubRecv != nil {
				r.VsRingOneWay = r.PubRecv.P50 / (p.RTT.P50 / 2)
			}
		}
		if ref := byName[pipeRef(*r)]; ref != nil {
			if x := better(r, ref); x > 0 {
				r.PipeRef, r.VsPipe = ref.Name, x
			}
		}
		if ref := byName[r.Anchor]; ref != nil {
			r.VsAnchor = better(r, ref)
		}
	}
}

// better is how many times better r is than ref (0 if either has no
// result): the rate ratio, or for ping-pong rows ref's RTT over r's: the
// p50s where both have percentiles, else the best-1k figures (untimed
// blocks, on both sides), else the means.
func better(r, ref *Row) float64 {
	if r.Error != "" || r.Skipped || ref.Error != "" || ref.Skipped || r.PerSec == 0 {
		return 0
	}
	if r.Group == groupPingPong {
		switch {
		case r.RTT != nil && ref.RTT != nil && r.RTT.P50 > 0 && ref.RTT.P50 > 0:
			return ref.RTT.P50 / r.RTT.P50
		case r.RTT != nil && ref.RTT != nil && r.RTT.Best > 0 && ref.RTT.Best > 0:
			// ref has no percentiles (internal/baseline's word ping-pong):
			// compare the best 1k, each side's cost when it had a CPU.
			return ref.RTT.Best / r.RTT.Best
		case r.RTT != nil && ref.RTT != nil && r.RTT.Mean > 0:
			return ref.RTT.Mean / r.RTT.Mean
		}
		return 0
	}
	if ref.PerSec > 0 {
		return r.PerSec / ref.PerSec
	}
	return 0
}

// ---- cleanup of named objects ----

var (
	cleanupMu  sync.Mutex
	cleanupFns = map[int]func(){}
	cleanupSeq int
)

// onCleanup registers f to run at exit or interruption; the returned func
// runs it now and unregisters it.
func onCleanup(f func()) func() {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	cleanupSeq++
	id := cleanupSeq
	cleanupFns[id] = f
	return func() {
		cleanupMu.Lock()
		f, ok := cleanupFns[id]
		delete(cleanupFns, id)
		cleanupMu.Unlock()
		if ok {
			f()
		}
	}
}

func cleanupAll() {
	cleanupMu.Lock()
	fns := cleanupFns
	cleanupFns = map[int]func(){}
	cleanupMu.Unlock()
	for _, f := range fns {
		f()
	}
}

var nameSeq int

// uniqueName is a name for a segment or queue of this run.
func uniqueName(what string) string {
	nameSeq++
	return fmt.Sprintf("shmbench-%d-%s-%d", os.Getpid(), what, nameSeq)
}

var _ = func() bool {
	baseline.RegisterPeer("shmbench-noop", func([]string) error { return nil })
	return true
}()

// childStartCPU is the mean CPU time of starting and reaping a child that
// does nothing.
func childStartCPU() time.Duration {
	const runs = 3
	c0 := cpuTime()
	for range runs {
		p, err := baseline.StartPeer("shmbench-noop", nil)
		if err != nil {
			return 0
		}
		if err := p.Wait(time.Minute); err != nil {
			return 0
		}
	}
	return (cpuTime() - c0) / runs
}
