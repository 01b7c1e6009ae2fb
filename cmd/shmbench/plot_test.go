package main

import (
	"strconv"
	"strings"
	"testing"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/recorder"
)

func fakeReport() Report {
	rep := Report{Machine: Machine{CPUs: 2, CPUModel: "test CPU", LoadStart: "0.00"}}
	for _, size := range []int{8, 64, 1024} {
		for i, key := range []string{"pipe", "chan", "ring", "ring-batch"} {
			rep.Rows = append(rep.Rows, Row{Name: "throughput/" + key + "/" + strconv.Itoa(size) + "B", Group: groupThroughput,
				Mechanism: key, Size: size, PerSec: float64(1e6 * (i + 1))})
		}
	}
	return rep
}

// The legend must end well inside the image: its colour swatches used to
// end exactly at the right edge, and renderers draw text up to about a
// fifth wider than gonum/plot measures it.
func TestLegendClearOfRightEdge(t *testing.T) {
	const w, h = 9 * vg.Inch, 3 * vg.Inch
	for _, c := range buildCharts(fakeReport()) {
		p, err := c.plot(fakeReport())
		if err != nil {
			t.Fatal(err)
		}
		rec := &recorder.Canvas{}
		p.Draw(draw.Canvas{Canvas: rec, Rectangle: vg.Rectangle{Max: vg.Point{X: w, Y: h}}})
		found := 0
		for _, a := range rec.Actions {
			fs, ok := a.(*recorder.FillString)
			if !ok {
				continue
			}
			for _, s := range c.series {
				if fs.String != s.name {
					continue
				}
				found++
				measured := p.Legend.TextStyle.Rectangle(fs.String).Max.X
				if end := fs.Point.X + measured*5/4; end > w {
					t.Errorf("%s: legend %q drawn a fifth wider ends at %.1fpt, past the %.1fpt edge", c.file, s.name, end, w)
				}
				// The colour swatch follows the name (a space, then
				// ThumbnailWidth); it used to end exactly at the edge.
				em := p.Legend.TextStyle.Rectangle(" ").Max.X
				if end := fs.Point.X + measured + em + p.Legend.ThumbnailWidth; end > w-vg.Points(12) {
					t.Errorf("%s: legend %q swatch ends at %.1fpt, within 12pt of the %.1fpt edge", c.file, s.name, end, w)
				}
			}
		}
		if found != len(c.series) {
			t.Errorf("%s: %d legend entries drawn, want %d", c.file, found, len(c.series))
		}
	}
}

// The zero-copy batch bar reads only each item's 8-byte sequence number;
// its label says so where the items are bigger than that.
func TestRingBatchLabelSaysWhatItTouches(t *testing.T) {
	for _, c := range buildCharts(fakeReport()) {
		if !strings.HasPrefix(c.file, "throughput-") {
			continue
		}
		var got string
		for _, l := range c.labels {
			if strings.HasPrefix(l, "ring-batch") {
				got = l
			}
		}
		want := "ring-batch (reads 8 B of each)"
		if c.file == "throughput-8B" {
			want = "ring-batch"
		}
		if got != want {
			t.Errorf("%s: label %q, want %q", c.file, got, want)
		}
	}
}
