package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testproc"
)

// TestQuickRun builds shmbench (without -race: the measurement loops are
// timing-sensitive and the race detector does not see shared memory
// anyway), runs it in quick mode, and checks that every row is there with
// positive numbers, that the charts and the markdown section are written,
// and that nothing is left in /dev/shm.
func TestQuickRun(t *testing.T) {
	goCmd, err := testproc.GoTool()
	if err != nil {
		t.Skip("no go command to build shmbench with")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "shmbench")
	build := exec.Command(goCmd, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	md := filepath.Join(dir, "BENCH.md")
	if err := os.WriteFile(md, []byte("# title\n\nprose before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plots := filepath.Join(dir, "img")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// -scale 0.5: half the -quick counts, enough to exercise every row.
	cmd := exec.CommandContext(ctx, bin, "-quick", "-scale", "0.5", "-json", "-plot", plots, "-markdown", md)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	t.Logf("shmbench -quick ran in %v", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("shmbench: %v\nstderr:\n%s", err, stderr.String())
	}

	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("decode JSON: %v\n%s", err, stdout.String())
	}
	if rep.Machine.CPUs < 1 || rep.Machine.GoVersion == "" || rep.Machine.LoadStart == "" {
		t.Errorf("machine description incomplete: %+v", rep.Machine)
	}
	got := map[string]Row{}
	for _, r := range rep.Rows {
		got[r.Name] = r
	}
	for _, b := range allBenches() {
		r, ok := got[b.name]
		if !ok {
			t.Errorf("row %s missing", b.name)
			continue
		}
		if r.Error != "" {
			t.Errorf("row %s failed: %s", r.Name, r.Error)
			continue
		}
		if r.Skipped {
			// Only a kernel without POSIX message queues may skip rows.
			if !strings.Contains(r.Name, "posix-mq") {
				t.Errorf("row %s skipped: %s", r.Name, r.Note)
			}
			continue
		}
		if r.Ops <= 0 || r.Seconds <= 0 || r.PerSec <= 0 || r.CPUSeconds <= 0 || r.CPUPerOpNs <= 0 {
			t.Errorf("row %s has non-positive numbers: %+v", r.Name, r)
		}
		if r.Group == groupThroughput && r.MBPerSec <= 0 {
			t.Errorf("row %s: no MB/s", r.Name)
		}
		if r.Group == groupPingPong {
			switch {
			case r.RTT == nil || r.RTT.Mean <= 0:
				t.Errorf("row %s: no RTT: %+v", r.Name, r.RTT)
			case strings.HasSuffix(r.Name, "-word") || r.Name == "pingpong/spin-ring": // internal/baseline: mean and best only
				if r.RTT.Best <= 0 {
					t.Errorf("row %s: no best-chunk RTT", r.Name)
				}
			case !(r.RTT.P50 > 0 && r.RTT.P50 <= r.RTT.P99 && r.RTT.P99 <= r.RTT.P999 && r.RTT.P999 <= r.RTT.Max):
				t.Errorf("row %s: RTT percentiles out of order: %+v", r.Name, *r.RTT)
			}
		}
		if r.Group == groupBus {
			checkBusRow(t, r)
		}
		if r.VsPipe <= 0 {
			t.Errorf("row %s: no ratio to the pipe baseline", r.Name)
		}
	}
	if len(rep.Rows) != len(allBenches()) {
		t.Errorf("%d rows, want %d", len(rep.Rows), len(allBenches()))
	}

	for _, c := range []string{"throughput-8B", "throughput-64B", "throughput-1024B", "pingpong-rtt", "map-mutex"} {
		for _, ext := range []string{".svg", ".png"} {
			fi, err := os.Stat(filepath.Join(plots, c+ext))
			if err != nil || fi.Size() < 1000 {
				t.Errorf("chart %s%s: %v (size %v)", c, ext, err, fi)
			}
		}
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"prose before", mdBegin, mdEnd, "img/pingpong-rtt.svg", "`throughput/pipe/8B`",
		"`bus/block-2sub/64B`", "goals with 2 subscribers", "bus/block-2sub/64B: throughput"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("markdown lacks %q:\n%s", want, b)
		}
	}

	// Segments are memfds, except the queues' posix:/ ones, which must be gone.
	if ents, err := os.ReadDir("/dev/shm"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "shmbench-") {
				t.Errorf("left behind: /dev/shm/%s", e.Name())
			}
		}
	}
}

// checkBusRow checks a bus row's own figures: one throughput per
// subscriber, every message delivered on a Block bus, ordered latency
// percentiles, and the ratios to the ring rows of the same run.
func checkBusRow(t *testing.T, r Row) {
	t.Helper()
	want := map[string]int{"1sub": 1, "2sub": 2, "4sub": 4}[strings.Split(strings.Split(r.Name, "-")[1], "/")[0]]
	if r.Subscribers != want || len(r.PerSubPerSec) != want {
		t.Errorf("row %s: %d subscribers, %d rates, want %d", r.Name, r.Subscribers, len(r.PerSubPerSec), want)
	}
	for _, v := range r.PerSubPerSec {
		if v < r.PerSec || v <= 0 {
			t.Errorf("row %s: subscriber rate %v, row rate (the slowest) %v", r.Name, v, r.PerSec)
		}
	}
	if strings.Contains(r.Name, "block") && r.Delivered != 1 {
		t.Errorf("row %s: Block bus delivered %v of the messages, want all", r.Name, r.Delivered)
	}
	if r.Delivered <= 0 || r.Delivered > 1 {
		t.Errorf("row %s: delivered fraction %v", r.Name, r.Delivered)
	}
	if l := r.PubRecv; l == nil || !(l.P50 > 0 && l.P50 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max && l.Mean > 0) {
		t.Errorf("row %s: publish→receive latency missing or out of order: %+v", r.Name, l)
	}
	if r.VsRing <= 0 || r.VsRingOneWay <= 0 {
		t.Errorf("row %s: no ratios to the ring rows (%v, %v)", r.Name, r.VsRing, r.VsRingOneWay)
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 1000; i++ {
		ds = append(ds, time.Duration(i))
	}
	for q, want := range map[float64]time.Duration{0.5: 500, 0.99: 990, 0.999: 999, 1: 1000, 0: 1} {
		if got := percentile(ds, q); got != want {
			t.Errorf("percentile(%v) = %v, want %v", q, got, want)
		}
	}
	if got := bestChunk([]time.Duration{5, 5, 1, 1}, 2); got != 1 {
		t.Errorf("bestChunk = %v, want 1", got)
	}
}

func TestMarkdownRegenerates(t *testing.T) {
	md := filepath.Join(t.TempDir(), "B.md")
	rep := Report{Rows: []Row{{Name: "throughput/pipe/8B", Group: groupThroughput, Mechanism: "pipe", Size: 8, PerSec: 1e6, Seconds: 1, Ops: 1e6}}}
	if err := os.WriteFile(md, []byte("intro\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := updateMarkdown(md, rep, ""); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(md)
	if n := bytes.Count(b, []byte(mdBegin)); n != 1 {
		t.Fatalf("%d generated sections after two updates:\n%s", n, b)
	}
	if !bytes.HasPrefix(b, []byte("intro\n")) {
		t.Fatalf("prose lost:\n%s", b)
	}
}

// TestTimeRoundTrips: every round trip runs once, in order; after the
// warm-up, timed and untimed blocks alternate (the percentiles from the
// first, the mean and best from full blocks of the second); an error
// stops the run.
func TestTimeRoundTrips(t *testing.T) {
	const n = 5500 // warm-up 550, then timed 1000, untimed 1000, timed, untimed, timed 950
	var seen []uint64
	out, err := timeRoundTrips(n, func(i uint64) error {
		seen = append(seen, i)
		for t0 := nanotime(); nanotime() == t0; { // at least a clock tick each
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range seen {
		if v != uint64(i) {
			t.Fatalf("round trip %d ran as %d", i, v)
		}
	}
	if len(seen) != n || len(out.rtts) != 2950 || out.mean <= 0 || out.best <= 0 || out.best > 2*out.mean {
		t.Errorf("%d round trips, %d timed, mean %v, best %v", len(seen), len(out.rtts), out.mean, out.best)
	}
	for _, d := range out.rtts {
		if d <= 0 {
			t.Fatalf("a timed round trip of %v", d)
		}
	}
	l := summarize(out, n)
	if l.Mean != float64(out.mean.Nanoseconds()) || l.Best != float64(out.best.Nanoseconds()) || l.P50 <= 0 {
		t.Errorf("summary %+v of mean %v best %v", l, out.mean, out.best)
	}
	stop := errors.New("stop")
	for _, at := range []uint64{3, 700, 2000} { // warm-up, timed, untimed
		if _, err := timeRoundTrips(n, func(i uint64) error {
			if i == at {
				return stop
			}
			return nil
		}); err != stop {
			t.Errorf("error at %d: %v, want %v", at, err, stop)
		}
	}
}
