package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// progress draws the live progress line: items per second through each
// stage and how full each ring is (a full ring sits in front of the
// slowest stage). On a terminal the line is redrawn in place five times a
// second; otherwise (a pipe, a CI log) a plain line is printed every second.
type progress struct {
	cfg      config
	rings    []ringHandle
	ctl      *control
	tty      bool
	enabled  bool
	interval time.Duration
	start    time.Time
	last     time.Time
	prev     []uint64
	drawn    bool
}

func newProgress(cfg config, rings []ringHandle, ctl *control) *progress {
	_, err := unix.IoctlGetTermios(int(os.Stderr.Fd()), unix.TCGETS)
	p := &progress{
		cfg: cfg, rings: rings, ctl: ctl,
		tty:      err == nil,
		enabled:  cfg.progress,
		interval: time.Second,
		start:    time.Now(),
		prev:     make([]uint64, cfg.stages+2),
	}
	if p.tty {
		p.interval = 200 * time.Millisecond
	}
	p.last = p.start
	return p
}

func (p *progress) update() {
	if !p.enabled {
		return
	}
	now := time.Now()
	dt := now.Sub(p.last).Seconds()
	p.last = now
	var b strings.Builder
	for i := range p.prev {
		n := p.ctl.Stage[i].Items.Load()
		if i > 0 {
			b.WriteString(" > ")
		}
		fmt.Fprintf(&b, "%s %s/s", stageName(p.cfg, i), count(uint64(float64(n-p.prev[i])/dt)))
		p.prev[i] = n
	}
	b.WriteString(" | rings")
	for _, r := range p.rings {
		st, _ := r.Stats() // a closed or corrupt ring shows what could be read
		fmt.Fprintf(&b, " %d%%", st.Len*100/max(st.Cap, 1))
	}
	sink := p.prev[len(p.prev)-1]
	fmt.Fprintf(&b, " | %s/%s %.0f%% %.1fs", count(sink), count(uint64(p.cfg.n)),
		float64(sink)*100/float64(p.cfg.n), now.Sub(p.start).Seconds())
	if p.tty {
		line := b.String()
		// A line wider than the terminal wraps, and \r then redraws only
		// its last part: cut it to the width.
		if ws, err := unix.IoctlGetWinsize(int(os.Stderr.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 1 && len(line) >= int(ws.Col) {
			line = line[:ws.Col-1]
		}
		fmt.Fprintf(os.Stderr, "\r\033[K%s", line)
		p.drawn = true
	} else {
		fmt.Fprintln(os.Stderr, b.String())
	}
}

// clear erases the progress line so that the next output starts clean.
func (p *progress) clear() {
	if p.drawn {
		fmt.Fprint(os.Stderr, "\r\033[K")
		p.drawn = false
	}
}
