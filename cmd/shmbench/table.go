package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// section is one table of the report: a group's rows with its columns.
type section struct {
	title  string
	group  string
	header []string
	cells  func(r Row) []string
	// footer, if set, returns lines printed under the table (given every
	// row of the report).
	footer func(all []Row) []string
}

var sections = []section{
	{
		title:  "Throughput: one process sends, the other receives (queues: P producers, C consumers)",
		group:  groupThroughput,
		header: []string{"row", "mechanism", "procs", "msgs/s", "MB/s", "CPU ns/msg", "vs pipe", "vs anchor"},
		cells: func(r Row) []string {
			return []string{r.Name, r.Mechanism, r.Procs, rate(r.PerSec), mb(r.MBPerSec), ns(r.CPUPerOpNs), ratio(r.VsPipe), vsAnchor(r)}
		},
	},
	{
		title:  "Ping-pong: one 8-byte message there and back (RTT)",
		group:  groupPingPong,
		header: []string{"row", "mechanism", "p50", "p99", "p99.9", "mean", "best 1k", "CPU/RTT", "vs pipe", "vs anchor"},
		cells: func(r Row) []string {
			l := r.RTT
			if l == nil {
				l = &Latency{}
			}
			return []string{r.Name, r.Mechanism, ns(l.P50), ns(l.P99), ns(l.P999), ns(l.Mean), ns(l.Best), ns(r.CPUPerOpNs), ratio(r.VsPipe), vsAnchor(r)}
		},
	},
	{
		title: "Bus: 1 publisher, N subscriber processes, 64-byte messages (msgs/s: per subscriber, the slowest; latency: publish→receive, one message at a time)",
		group: groupBus,
		header: []string{"row", "mechanism", "procs", "msgs/s/sub", "MB/s/sub", "received", "p50", "p99", "p99.9", "best 1k",
			"CPU ns/msg", "vs ring tput", "p50 vs ring 1-way", "vs pipe"},
		cells: func(r Row) []string {
			l := r.PubRecv
			if l == nil {
				l = &Latency{}
			}
			return []string{r.Name, r.Mechanism, r.Procs, rate(r.PerSec), mb(r.MBPerSec), fmt.Sprintf("%.1f%%", 100*r.Delivered),
				ns(l.P50), ns(l.P99), ns(l.P999), ns(l.Best), ns(r.CPUPerOpNs), ratio(r.VsRing), ratio(r.VsRingOneWay), ratio(r.VsPipe)}
		},
		footer: busComparison,
	},
	{
		title:  "Map: 8-byte keys, 64-byte values, random keys",
		group:  groupMap,
		header: []string{"row", "mechanism", "procs", "ops/s", "CPU ns/op", "vs pipe 8B", "vs anchor"},
		cells: func(r Row) []string {
			return []string{r.Name, r.Mechanism, r.Procs, rate(r.PerSec), ns(r.CPUPerOpNs), ratio(r.VsPipe), vsAnchor(r)}
		},
	},
	{
		title:  "Mutex: lock, increment a shared counter, unlock",
		group:  groupMutex,
		header: []string{"row", "mechanism", "procs", "ops/s", "CPU ns/op", "vs pipe 8B", "vs anchor"},
		cells: func(r Row) []string {
			return []string{r.Name, r.Mechanism, r.Procs, rate(r.PerSec), ns(r.CPUPerOpNs), ratio(r.VsPipe), vsAnchor(r)}
		},
	},
}

// vsAnchor is the "vs anchor" cell: the ratio and the anchor row's name
// without its group ("0.71× go-map-get-1M/1goroutine").
func vsAnchor(r Row) string {
	if r.Anchor == "" || r.VsAnchor == 0 {
		return "-"
	}
	_, short, _ := strings.Cut(r.Anchor, "/")
	return ratio(r.VsAnchor) + " " + short
}

// rowCells is the section's cells for r, or a skip/error line.
func (s section) rowCells(r Row) []string {
	switch {
	case r.Skipped:
		return []string{r.Name, r.Mechanism, "skipped: " + r.Note}
	case r.Error != "":
		return []string{r.Name, r.Mechanism, "FAILED: " + r.Error}
	}
	return s.cells(r)
}

// writeTable prints the report as aligned text tables.
func writeTable(w io.Writer, rep Report) {
	m := rep.Machine
	fmt.Fprintf(w, "shmbench: %d CPUs, %s, %s, %s/%s\n", m.CPUs, m.CPUModel, m.Kernel, m.GoVersion, m.GOARCH)
	fmt.Fprintf(w, "load average at start %s, at end %s; %d rows in %.1fs", m.LoadStart, rep.LoadEnd, len(rep.Rows), rep.Seconds)
	if rep.Quick {
		fmt.Fprint(w, " (-quick: small counts, noisy)")
	}
	fmt.Fprintf(w, "\nCPU = user+system time of shmbench and its children per operation, including %.1f ms per child for start-up.\n", rep.ChildStartCPUms)
	for _, s := range sections {
		var rows []Row
		for _, r := range rep.Rows {
			if r.Group == s.group {
				rows = append(rows, r)
			}
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s\n", s.title)
		lines := [][]string{s.header}
		for _, r := range rows {
			lines = append(lines, s.rowCells(r))
		}
		writeAligned(w, lines, 2)
		if s.footer != nil {
			for _, l := range s.footer(rep.Rows) {
				fmt.Fprintln(w, l)
			}
		}
	}
	for _, r := range rep.Rows {
		if r.Note != "" && !r.Skipped {
			fmt.Fprintf(w, "\nnote %s: %s", r.Name, r.Note)
		}
	}
	fmt.Fprintln(w)
}

// writeAligned prints cells in columns: the first textCols columns
// left-aligned, the numbers right-aligned. A row with fewer cells (a
// skipped or failed row) lets its last cell run on.
func writeAligned(w io.Writer, lines [][]string, textCols int) {
	width := make([]int, len(lines[0]))
	for _, l := range lines {
		if len(l) != len(width) || strings.HasPrefix(l[len(l)-1], "skipped") {
			continue
		}
		for i, c := range l {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, l := range lines {
		var b strings.Builder
		for i, c := range l {
			pad := 0
			if i < len(width) {
				pad = width[i] - utf8.RuneCountInString(c)
			}
			if i > 0 {
				b.WriteString("  ")
			}
			if i < textCols || i >= len(width) || strings.HasPrefix(c, "skipped") || strings.HasPrefix(c, "FAILED") {
				b.WriteString(c)
				if i < len(l)-1 {
					b.WriteString(strings.Repeat(" ", max(pad, 0)))
				}
				continue
			}
			b.WriteString(strings.Repeat(" ", max(pad, 0)))
			b.WriteString(c)
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// ---- number formatting ----

func rate(v float64) string {
	switch {
	case v <= 0:
		return "-"
	case v >= 1e9:
		return fmt.Sprintf("%.2fG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func mb(v float64) string {
	if v <= 0 {
		return "-"
	}
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// ns formats a duration given in nanoseconds.
func ns(v float64) string {
	if v <= 0 {
		return "-"
	}
	d := time.Duration(v)
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%.0fns", v)
	case d < time.Millisecond:
		return fmt.Sprintf("%.2fµs", v/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", v/1e6)
	}
	return fmt.Sprintf("%.2fs", v/1e9)
}

func ratio(v float64) string {
	if v <= 0 {
		return "-"
	}
	if v >= 10 {
		return fmt.Sprintf("%.0f×", v)
	}
	return fmt.Sprintf("%.2f×", v)
}

// ---- progress on stderr ----

// progress shows which row is running, on one rewritten line, only when
// stderr is a terminal.
type progress struct {
	w     io.Writer
	on    bool
	total int
	t0    time.Time
}

func newProgress(f *os.File, total int) *progress {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return &progress{w: f, on: err == nil, total: total, t0: time.Now()}
}

func (p *progress) start(i int, name string) {
	if p.on {
		fmt.Fprintf(p.w, "\r\033[K[%d/%d %4.0fs] %s ...", i+1, p.total, time.Since(p.t0).Seconds(), name)
	}
}

func (p *progress) done(i int, r Row) {
	if !p.on {
		return
	}
	if r.Error != "" {
		fmt.Fprintf(p.w, "\r\033[K%s FAILED: %s\n", r.Name, r.Error)
	}
}

func (p *progress) finish() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
