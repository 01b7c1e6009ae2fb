// Command shmbench measures shmkit's structures against the classic ways
// of moving data between processes, side by side, in one run, on the
// machine it runs on.
//
//	go run ./cmd/shmbench                 # full run, table on stdout
//	go run ./cmd/shmbench -quick          # under a minute, every row
//	go run ./cmd/shmbench -only 'ring|pipe' -json
//	go run ./cmd/shmbench -plot docs/img -markdown docs/BENCHMARKS.md
//
// # What is measured
//
// Every cross-process row runs between real processes: shmbench re-executes
// itself as the peer (internal/baseline's peer mechanism: an environment
// variable names the role, files arrive as fd 3, 4, ...). Children attach,
// say they are ready on a status pipe, and only then does the clock start,
// so process start-up is never timed.
//
//   - throughput rows: the parent sends count messages (or items) to a
//     child that receives them all and acknowledges; the time runs from the
//     first send to the acknowledgement. Queue rows run P producer and C
//     consumer children and time from the start signal to the last
//     consumer's end of stream. The pipe, Unix socket and SysV message
//     queue rows are internal/baseline's measurements.
//   - ping-pong rows: one 8-byte message bounces between the parent and an
//     echoing child. After a warm-up, blocks of 1000 round trips alternate:
//     timed blocks time each round trip (one clock read each, counted in
//     it), giving the p50/p99/p99.9 of the round-trip time (RTT); untimed
//     blocks read the clock only at their ends, giving the mean and the
//     best 1k, comparable with the baseline rows and the C anchors, which
//     time whole loops.
//   - map and mutex rows: 1 or 2 worker processes run their operations
//     after a common start signal; the rate is all operations over the
//     wall time until the last worker is done.
//
// CPU is the user+system time of this process and its reaped children
// (getrusage RUSAGE_SELF + RUSAGE_CHILDREN) over the row, including child
// start-up (a few ms per child: noticeable only in -quick rows). "vs pipe"
// is how many times better than the pipe row of the same payload size a
// row is: throughput / pipe throughput, or pipe RTT / row RTT (p50s, or
// best 1k where a row has no percentiles); for
// map and mutex rows it compares one operation with one 8-byte pipe
// message.
//
// Rows run one after another, never concurrently, so each has the machine
// to itself as far as shmbench is concerned; the load average at the start
// and end is recorded because other load is not under its control.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shmkit/shmkit/internal/baseline"
)

func main() {
	// A re-executed child runs its peer role here and exits.
	baseline.RunPeer()

	quick := flag.Bool("quick", false, "small counts: the whole run takes under a minute")
	jsonOut := flag.Bool("json", false, "write the report as JSON on stdout instead of the table")
	plotDir := flag.String("plot", "", "write charts (SVG and PNG) into `DIR`")
	only := flag.String("only", "", "run only rows whose name matches `REGEX` (see -list; keep the pipe rows for \"vs pipe\")")
	markdown := flag.String("markdown", "", "rewrite the generated section of the markdown `FILE` (e.g. docs/BENCHMARKS.md)")
	scale := flag.Float64("scale", 1, "multiply every row's operation count by `F`")
	list := flag.Bool("list", false, "list row names and exit")
	flag.Parse()

	benches := allBenches()
	if *list {
		for _, b := range benches {
			fmt.Println(b.name)
		}
		return
	}
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			fatalf("-only: %v", err)
		}
		benches = filter(benches, re)
		if len(benches) == 0 {
			fatalf("-only %q matches no row (see -list)", *only)
		}
	}

	cfg := runConfig{quick: *quick, scale: *scale}
	go cleanupOnSignal()
	rep := run(cfg, benches, newProgress(os.Stderr, len(benches)))
	defer cleanupAll()

	if *jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fatalf("json: %v", err)
		}
	} else {
		writeTable(os.Stdout, rep)
	}
	if *plotDir != "" {
		files, err := writePlots(*plotDir, rep)
		if err != nil {
			fatalf("plot: %v", err)
		}
		for _, f := range files {
			fmt.Fprintln(os.Stderr, "wrote", f)
		}
	}
	if *markdown != "" {
		if err := updateMarkdown(*markdown, rep, *plotDir); err != nil {
			fatalf("markdown: %v", err)
		}
		fmt.Fprintln(os.Stderr, "updated", *markdown)
	}
	if interrupted.Load() {
		cleanupAll()
		os.Exit(2)
	}
	if rep.Failed > 0 {
		cleanupAll()
		os.Exit(1)
	}
}

func filter(bs []*bench, re *regexp.Regexp) []*bench {
	var out []*bench
	for _, b := range bs {
		if re.MatchString(b.name) {
			out = append(out, b)
		}
	}
	return out
}

// interrupted is set by the first SIGINT/SIGTERM: the run stops after
// the current row, whose own cleanup (including internal/baseline's, which
// this program cannot reach) then runs normally.
var interrupted atomic.Bool

// cleanupOnSignal stops the run after the current row on the first signal;
// a second one removes this run's named objects and exits at once
// (children die with shmbench: PDEATHSIG).
func cleanupOnSignal() {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	<-ch
	interrupted.Store(true)
	fmt.Fprintln(os.Stderr, "\nshmbench: interrupted: finishing the current row (interrupt again to abort)")
	s := <-ch
	cleanupAll()
	fmt.Fprintf(os.Stderr, "\nshmbench: %v\n", s)
	os.Exit(2)
}

func fatalf(format string, args ...any) {
	cleanupAll()
	fmt.Fprintf(os.Stderr, "shmbench: "+format+"\n", args...)
	os.Exit(2)
}

// runConfig scales the runs.
type runConfig struct {
	quick bool
	scale float64
}

// count is the operation count for a row whose full-run count is full.
func (c runConfig) count(full int) int {
	n := float64(full) * c.scale
	if c.quick {
		n /= 10
	}
	return max(int(n), 200)
}

// timeout bounds one row: a peer that hangs fails the row, not the run.
func (c runConfig) timeout() time.Duration {
	if c.quick {
		return 45 * time.Second
	}
	return 3 * time.Minute
}
