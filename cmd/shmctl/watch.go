package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
)

var cmdWatch = &command{
	name:    "watch",
	summary: "show a segment's throughput and fill level as it changes",
	help: `Usage: shmctl watch [-i INTERVAL] [-n COUNT] SPEC

Print one line per interval for a ring, queue or map: the time, the number
of items it holds, its fill level, and how many items per second went in and
came out since the previous line (from the structure's cumulative counters,
or from the movement of its head and tail). The first line has no rates.
watch reads the segment through a read-only mapping and runs until
interrupted (Ctrl-C), or until COUNT lines have been printed.

Options:
  -i INTERVAL   time between lines, as a Go duration (default 1s)
  -n COUNT      stop after COUNT lines (default 0: run until interrupted)

Examples:
  shmctl watch posix:/orders
  shmctl watch -i 250ms -n 20 /dev/shm/jobs

Exit status:
  0  interrupted, or COUNT lines printed
  1  the segment could not be opened, is corrupt, or has no live counters
  2  usage error
`,
}

func init() { cmdWatch.run = runWatch }

func runWatch(e *env, args []string) int {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	interval := fs.Duration("i", time.Second, "")
	count := fs.Int("n", 0, "")
	operands, status, ok := parseFlags(e, cmdWatch, fs, args)
	if !ok {
		return status
	}
	if len(operands) != 1 {
		return usageError(e, cmdWatch, "want exactly one SPEC, got %d", len(operands))
	}
	if *interval <= 0 {
		return usageError(e, cmdWatch, "interval must be positive, got %v", *interval)
	}
	if *count < 0 {
		return usageError(e, cmdWatch, "count must not be negative, got %d", *count)
	}
	t, err := resolve(operands[0], scanProc())
	if err != nil {
		e.errorf("watch: %v", err)
		return exitProblem
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return watch(ctx, e, t, *interval, *count)
}

func watch(ctx context.Context, e *env, t *target, interval time.Duration, count int) (status int) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			e.errorf("watch: %s: fault while reading the segment (did a peer shrink it?): %v", t.Spec, p)
			status = exitProblem
		}
	}()
	h, err := openRead(t)
	if err != nil {
		e.errorf("watch: %s: %v", t.Spec, err)
		return exitProblem
	}
	defer h.close()
	s, err := layout.Open(h.layoutSpec, layout.Expect{Kind: layout.KindAny},
		layout.WithSegment(segment.ReadOnly(), segment.WithTrustAnyOwner()), layout.WithInitTimeout(0))
	if err != nil {
		e.errorf("watch: %s", h.name(err))
		return exitProblem
	}
	defer s.Close()
	kind := s.Header().Kind
	pr, ok := probes[kind]
	if !ok || !pr.hasLive() {
		e.errorf("watch: %s: a %s segment has no live counters to watch", t.Spec, kind)
		return exitProblem
	}
	capacity := s.Header().Capacity
	// Fixed widths rather than a tabwriter: lines are printed one at a
	// time and must line up with the header printed before them.
	const row = "%-12s %10s %10s %7s %12s %12s\n"
	var prev *Live
	var prevAt time.Time
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for n := 0; count == 0 || n < count; n++ {
		if n > 0 {
			select {
			case <-ctx.Done():
				return exitOK
			case <-tick.C:
			}
		}
		now := time.Now()
		l, err := pr.readLive(s, h.layoutSpec)
		if err != nil {
			e.errorf("watch: %s", h.name(err))
			return exitProblem
		}
		if l == nil || l.Len == nil && l.In == nil && l.Out == nil {
			e.errorf("watch: %s: a %s segment has no live counters to watch", t.Spec, kind)
			return exitProblem
		}
		if n == 0 {
			fmt.Fprintf(e.stdout, row, "TIME", "LEN", "CAP", "FILL", "IN/s", "OUT/s")
		}
		lenS, fill := "-", "-"
		if l.Len != nil {
			lenS = fmt.Sprint(*l.Len)
			if capacity > 0 {
				fill = fmt.Sprintf("%.1f%%", 100*float64(*l.Len)/float64(capacity))
			}
		}
		in, out := "-", "-"
		if prev != nil {
			dt := now.Sub(prevAt).Seconds()
			in, out = rate(prev.In, l.In, dt), rate(prev.Out, l.Out, dt)
		}
		fmt.Fprintf(e.stdout, row, now.Format("15:04:05.000"), lenS, strconv.FormatUint(capacity, 10), fill, in, out)
		prev, prevAt = l, now
		if ctx.Err() != nil {
			return exitOK
		}
	}
	return exitOK
}

// rate formats the per-second change of a cumulative counter. A counter
// that went backwards (a restarted structure, or a scribbled word) has no
// meaningful rate.
func rate(before, after *uint64, dt float64) string {
	if before == nil || after == nil || dt <= 0 || *after < *before {
		return "-"
	}
	return fmt.Sprintf("%.0f", float64(*after-*before)/dt)
}
