package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Charts: horizontal bars on a log scale (the mechanisms span three
// orders of magnitude). gonum/plot's LogScale cannot draw bars (they start
// at 0), so bars show log10 of the value and the ticks are labelled with
// the values.

type chart struct {
	file, title, unit string
	labels            []string
	series            []chartSeries
}

type chartSeries struct {
	name   string
	values []float64 // in unit; 0 = missing
	color  color.Color
}

var (
	colorShm   = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff} // shmkit rows
	colorBase  = color.RGBA{R: 0x99, G: 0x99, B: 0x99, A: 0xff} // baselines
	colorP99   = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	colorBound = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff} // in-process bounds
)

func isShm(r Row) bool { return strings.HasPrefix(r.Mechanism, "shmkit") }
func isBound(r Row) bool {
	return strings.Contains(r.Mechanism, "in-process") || strings.Contains(r.Mechanism, "floor")
}

// buildCharts turns the report into charts; rows that failed or were
// skipped are left out.
func buildCharts(rep Report) []chart {
	ok := func(r Row) bool { return r.Error == "" && !r.Skipped && r.PerSec > 0 }
	var charts []chart
	for _, size := range []int{8, 64, 1024} {
		c := chart{file: fmt.Sprintf("throughput-%dB", size), title: fmt.Sprintf("Cross-process throughput, %d-byte messages", size), unit: "messages/s"}
		var shm, base, bound []float64
		for _, r := range rep.Rows {
			if r.Group != groupThroughput || r.Size != size || !ok(r) {
				continue
			}
			c.labels = append(c.labels, label(r))
			shm, base, bound = appendByKind(r, r.PerSec, shm, base, bound)
		}
		c.series = kindSeries(shm, base, bound)
		charts = append(charts, c)
	}
	rtt := chart{file: "pingpong-rtt", title: "Round-trip time, 8-byte ping-pong (shorter is better)", unit: "RTT"}
	var p50, p99 []float64
	for _, r := range rep.Rows {
		if r.Group != groupPingPong || !ok(r) || r.RTT == nil {
			continue
		}
		rtt.labels = append(rtt.labels, label(r))
		if r.RTT.P50 > 0 {
			p50 = append(p50, r.RTT.P50)
			p99 = append(p99, r.RTT.P99)
		} else { // mean only
			p50 = append(p50, r.RTT.Mean)
			p99 = append(p99, 0)
		}
	}
	rtt.series = []chartSeries{{"p50 (mean where no percentiles)", p50, colorShm}, {"p99", p99, colorP99}}
	charts = append(charts, rtt)

	ops := chart{file: "map-mutex", title: "Map and Mutex operations", unit: "operations/s"}
	var shm, base, bound []float64
	for _, r := range rep.Rows {
		if (r.Group != groupMap && r.Group != groupMutex) || !ok(r) {
			continue
		}
		ops.labels = append(ops.labels, label(r))
		shm, base, bound = appendByKind(r, r.PerSec, shm, base, bound)
	}
	ops.series = kindSeries(shm, base, bound)
	charts = append(charts, ops)

	var out []chart
	for _, c := range charts {
		if len(c.labels) > 0 {
			out = append(out, c)
		}
	}
	return out
}

func label(r Row) string {
	name := r.Name
	switch r.Group {
	case groupThroughput:
		// "throughput/ring/64B" -> "ring": the size is in the title.
		name = strings.TrimPrefix(name, "throughput/")
		if i := strings.LastIndex(name, "/"); i > 0 {
			name = name[:i]
		}
		if name == "ring-batch" && r.Size > 8 {
			// Zero-copy: the consumer checks each item's 8-byte sequence
			// number in place and copies nothing, so the bar is not a
			// full read of every byte, unlike the other rows.
			name += " (reads 8 B of each)"
		}
	case groupPingPong:
		name = strings.TrimPrefix(name, "pingpong/")
	}
	return name
}

// appendByKind puts v in the series of r's kind and 0 in the others, so
// each bar is coloured by kind.
func appendByKind(r Row, v float64, shm, base, bound []float64) ([]float64, []float64, []float64) {
	switch {
	case isShm(r):
		return append(shm, v), append(base, 0), append(bound, 0)
	case isBound(r):
		return append(shm, 0), append(base, 0), append(bound, v)
	}
	return append(shm, 0), append(base, v), append(bound, 0)
}

func kindSeries(shm, base, bound []float64) []chartSeries {
	return []chartSeries{{"shmkit", shm, colorShm}, {"baseline", base, colorBase}, {"in-process bound", bound, colorBound}}
}

// writePlots writes every chart as SVG and PNG into dir.
func writePlots(dir string, rep Report) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	for _, c := range buildCharts(rep) {
		p, err := c.plot(rep)
		if err != nil {
			return files, fmt.Errorf("%s: %w", c.file, err)
		}
		h := vg.Length(len(c.labels))*0.32*vg.Inch + 1.6*vg.Inch
		for _, ext := range []string{".svg", ".png"} {
			f := filepath.Join(dir, c.file+ext)
			if err := p.Save(9*vg.Inch, h, f); err != nil {
				return files, err
			}
			files = append(files, f)
		}
	}
	return files, nil
}

func (c chart) plot(rep Report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = c.title
	p.X.Label.Text = fmt.Sprintf("%s (log scale) — %s, %d CPUs, load %s", c.unit, rep.Machine.CPUModel, rep.Machine.CPUs, rep.Machine.LoadStart)
	p.X.Label.TextStyle.Font.Size = vg.Points(8)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range c.series {
		for _, v := range s.values {
			if v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 0) {
		return nil, fmt.Errorf("no data")
	}
	// Bars start at the decade below the smallest value.
	base := math.Floor(math.Log10(lo)) - 0.3
	top := math.Ceil(math.Log10(hi))
	// Series drawn side by side when more than one has a value in the
	// same row (the RTT chart); colour-coded single bars otherwise.
	grouped := c.unit == "RTT"
	n := len(c.series)
	width := vg.Points(14)
	if grouped {
		width = vg.Points(8)
	}
	for i, s := range c.series {
		vals := make(plotter.Values, len(s.values))
		for j, v := range s.values {
			if v > 0 {
				vals[j] = math.Log10(v) - base
			}
		}
		// Labels are drawn top to bottom in report order.
		rev := make(plotter.Values, len(vals))
		for j := range vals {
			rev[len(vals)-1-j] = vals[j]
		}
		b, err := plotter.NewBarChart(rev, width)
		if err != nil {
			return nil, err
		}
		b.Horizontal = true
		b.Color = s.color
		b.LineStyle.Width = 0
		if grouped {
			b.Offset = width * (vg.Length(n-1)/2 - vg.Length(i))
		}
		p.Add(b)
		p.Legend.Add(s.name, b)
	}
	labels := make([]string, len(c.labels))
	for j, l := range c.labels {
		// Leading spaces widen the label column: gonum/plot measures the
		// text slightly narrower than some renderers draw it.
		labels[len(labels)-1-j] = "   " + l
	}
	p.NominalY(labels...)
	p.Y.Tick.Label.Font.Size = vg.Points(9)
	p.X.Min, p.X.Max = 0, top-base
	p.X.Tick.Marker = decadeTicks{base: base, unit: c.unit}
	p.Legend.Top = true
	p.Legend.Left = false
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	// gonum/plot measures legend text narrower than SVG viewers and PNG
	// draw it, and puts the legend flush with the right edge of the data
	// area, so the ends of the names were cut off: keep it clear of the
	// edge by more than that error.
	p.Legend.XOffs = -legendInset
	p.Legend.YOffs = -vg.Points(4)
	p.Legend.Padding = vg.Points(2)
	p.Add(plotter.NewGrid())
	return p, nil
}

// legendInset is how far the legend keeps from the right edge of the plot.
const legendInset = vg.Length(36)

// decadeTicks labels the shifted log10 axis with the real values.
type decadeTicks struct {
	base float64
	unit string
}

func (d decadeTicks) Ticks(min, max float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Ceil(min + d.base); e <= max+d.base+1e-9; e++ {
		ts = append(ts, plot.Tick{Value: e - d.base, Label: d.format(math.Pow(10, e))})
		for k := 2.0; k < 10; k++ {
			if v := e + math.Log10(k); v-d.base <= max {
				ts = append(ts, plot.Tick{Value: v - d.base})
			}
		}
	}
	return ts
}

func (d decadeTicks) format(v float64) string {
	if d.unit == "RTT" {
		return ns(v)
	}
	return rate(v) + "/s"
}
