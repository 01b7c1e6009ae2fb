package main

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	"github.com/shmkit/shmkit/shmring"
)

// ringHandle is what the parent needs of a Ring[T] whatever T is.
type ringHandle interface {
	Close() error
	Segment() *layout.Segment
	Stats() (shmring.RingStats, error)
}

// seg is one segment the parent created.
type seg struct {
	spec    string // the name it was created under
	handle  interface{ Close() error }
	file    *os.File // the descriptor, for memfd (passed to stages)
	removed bool
}

type parent struct {
	cfg    config
	tmpDir string // for -backend file
	ctl    *layout.Value[control]
	rings  []ringHandle
	segs   []*seg // ctl first, then ring0, ring1, ...
	procs  []*exec.Cmd
	done   []bool // procs[i] has been reaped (only the run loop writes it)
	exited chan stageExit
}

type stageExit struct {
	index int
	err   error
}

func parentMain(cfg config) int {
	// Signals first: from here on Ctrl-C is ours, so it can never skip the
	// cleanup below.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)

	p := &parent{cfg: cfg, exited: make(chan stageExit, cfg.stages+2)}
	defer p.cleanup()
	if err := p.createSegments(); err != nil {
		fmt.Fprintln(os.Stderr, "pipeline:", err)
		return 1
	}
	if err := p.startStages(); err != nil {
		fmt.Fprintln(os.Stderr, "pipeline:", err)
		p.stopAndReap()
		return 1
	}
	return p.run(sigs)
}

// name returns the spec under which segment name is created.
func (p *parent) spec(name string) (string, error) {
	switch p.cfg.backend {
	case "posix":
		return fmt.Sprintf("posix:/shmkit-pipeline-%d-%s", os.Getpid(), name), nil
	case "memfd":
		return "memfd:shmkit-pipeline-" + name, nil
	case "file":
		if p.tmpDir == "" {
			d, err := os.MkdirTemp("", "shmkit-pipeline-")
			if err != nil {
				return "", err
			}
			p.tmpDir = d
		}
		return "file:" + filepath.Join(p.tmpDir, name), nil
	case "sysv":
		// SysV names are 32-bit keys: pick one at random; create retries
		// if it is taken.
		return fmt.Sprintf("sysv:%#08x", 0x5e000000|rand.Uint32()&0xffffff), nil
	}
	return "", fmt.Errorf("unknown backend %q", p.cfg.backend)
}

// create makes one segment through mk, retrying with a fresh SysV key when
// the random one is taken.
func (p *parent) create(name string, mk func(spec string) (interface{ Close() error }, *layout.Segment, error)) error {
	for try := 0; ; try++ {
		spec, err := p.spec(name)
		if err != nil {
			return err
		}
		h, s, err := mk(spec)
		if errors.Is(err, fs.ErrExist) && p.cfg.backend == "sysv" && try < 16 {
			continue
		}
		if err != nil {
			return fmt.Errorf("create %s: %w", spec, err)
		}
		p.segs = append(p.segs, &seg{spec: spec, handle: h, file: s.Raw().File()})
		return nil
	}
}

func (p *parent) createSegments() error {
	err := p.create("ctl", func(spec string) (interface{ Close() error }, *layout.Segment, error) {
		v, err := layout.CreateValue[control](spec)
		if err != nil {
			return nil, nil, err
		}
		p.ctl = v
		return v, v.Segment(), nil
	})
	if err != nil {
		return err
	}
	for i := 0; i <= p.cfg.stages; i++ {
		err := p.create("ring"+strconv.Itoa(i), func(spec string) (interface{ Close() error }, *layout.Segment, error) {
			r, err := createRing(p.cfg, spec)
			if err != nil {
				return nil, nil, err
			}
			p.rings = append(p.rings, r)
			return r, r.Segment(), nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func createRing(cfg config, spec string) (ringHandle, error) {
	opts := []shmring.Option{shmring.WithPopulate()}
	switch cfg.elem {
	case 16:
		return shmring.Create[Item16](spec, cfg.capacity, opts...)
	case 64:
		return shmring.Create[Item64](spec, cfg.capacity, opts...)
	case 256:
		return shmring.Create[Item256](spec, cfg.capacity, opts...)
	default:
		return shmring.Create[Item1024](spec, cfg.capacity, opts...)
	}
}

// Environment of a stage process. The role travels in the environment, not
// in flags, so that -help shows only what a user may set.
const (
	envStage   = "SHMKIT_PIPELINE_STAGE"   // index: 0 source, 1..N transforms, N+1 sink
	envParent  = "SHMKIT_PIPELINE_PARENT"  // the parent's pid
	envControl = "SHMKIT_PIPELINE_CONTROL" // spec of the control block
	envIn      = "SHMKIT_PIPELINE_IN"      // spec of the input ring
	envOut     = "SHMKIT_PIPELINE_OUT"     // spec of the output ring
)

func (p *parent) startStages() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	for i := 0; i <= p.cfg.stages+1; i++ {
		cmd := exec.Command(exe, p.cfg.args()...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		// Pdeathsig: a stage dies with the parent even if the parent is
		// SIGKILLed and cannot stop it. (The signal follows the thread that
		// forked; Go only retires threads locked with LockOSThread, which
		// this program never does.)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		cmd.Env = append(os.Environ(),
			envStage+"="+strconv.Itoa(i),
			envParent+"="+strconv.Itoa(os.Getpid()))
		// A stage opens the control block and its rings by name, or, for
		// memfd (which has no name anyone can look up), by the descriptor
		// the parent hands down: ExtraFiles[k] is fd 3+k in the child.
		pass := func(env string, s *seg) {
			spec := s.spec
			if p.cfg.backend == "memfd" {
				spec = "fd:" + strconv.Itoa(3+len(cmd.ExtraFiles))
				cmd.ExtraFiles = append(cmd.ExtraFiles, s.file)
			}
			cmd.Env = append(cmd.Env, env+"="+spec)
		}
		pass(envControl, p.segs[0])
		if i > 0 {
			pass(envIn, p.segs[i]) // ring i-1
		}
		if i <= p.cfg.stages {
			pass(envOut, p.segs[i+1]) // ring i
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", stageName(p.cfg, i), err)
		}
		p.procs = append(p.procs, cmd)
		p.done = append(p.done, false)
		go func(i int) { p.exited <- stageExit{i, cmd.Wait()} }(i)
	}
	return nil
}

func stageName(cfg config, i int) string {
	switch {
	case i == 0:
		return "source"
	case i <= cfg.stages:
		return "t" + strconv.Itoa(i)
	}
	return "sink"
}

// run supervises the stages until they all exit, and returns the exit
// status. A signal, or a stage that fails, makes it stop the others.
func (p *parent) run(sigs <-chan os.Signal) int {
	ctl := p.ctl.Ptr()
	nstages := p.cfg.stages + 2
	prog := newProgress(p.cfg, p.rings, ctl)
	tick := time.NewTicker(prog.interval)
	defer tick.Stop()

	var failed []string
	var interrupted os.Signal
	var kill <-chan time.Time // armed once the stages were asked to stop
	for p.pending() > 0 {
		select {
		case s := <-sigs:
			if interrupted == nil {
				interrupted = s
				prog.clear()
				fmt.Fprintf(os.Stderr, "pipeline: %v: stopping %d stages\n", s, p.pending())
				kill = p.stopStages()
			}
		case ex := <-p.exited:
			p.done[ex.index] = true
			if ex.err == nil || kill != nil {
				break
			}
			failed = append(failed, fmt.Sprintf("%s: %v", stageName(p.cfg, ex.index), ex.err))
			var ee *exec.ExitError
			if errors.As(ex.err, &ee) && ee.ExitCode() == exitStageMismatch {
				break // it passed the stream on: let the others finish
			}
			// The stages around a failed one would wait for it forever:
			// stop them all.
			prog.clear()
			kill = p.stopStages()
		case <-kill:
			for i, c := range p.procs {
				if !p.done[i] {
					_ = c.Process.Signal(syscall.SIGKILL)
				}
			}
			kill = make(chan time.Time) // never again
		case <-tick.C:
			if kill == nil {
				prog.update()
			}
		}
		p.removeNamesOnceAttached(nstages)
	}
	prog.clear()
	p.removeNames()

	if interrupted != nil {
		fmt.Fprintf(os.Stderr, "pipeline: interrupted after %d of %d items reached the sink; all segments removed\n",
			ctl.Stage[nstages-1].Items.Load(), p.cfg.n)
		return 128 + int(interrupted.(syscall.Signal))
	}
	return p.summary(failed)
}

// stopStages asks every stage still running to stop (SIGTERM) and returns
// a timer after which the caller SIGKILLs the ones that did not.
func (p *parent) stopStages() <-chan time.Time {
	for i, c := range p.procs {
		if !p.done[i] {
			_ = c.Process.Signal(syscall.SIGTERM)
		}
	}
	return time.After(2 * time.Second)
}

// stopAndReap stops the stages started so far and waits for them.
func (p *parent) stopAndReap() {
	kill := p.stopStages()
	for p.pending() > 0 {
		select {
		case ex := <-p.exited:
			p.done[ex.index] = true
		case <-kill:
			for i, c := range p.procs {
				if !p.done[i] {
					_ = c.Process.Signal(syscall.SIGKILL)
				}
			}
		}
	}
}

// pending counts stages not yet reaped.
func (p *parent) pending() int {
	n := 0
	for i := range p.procs {
		if !p.done[i] {
			n++
		}
	}
	return n
}

// removeNamesOnceAttached removes the segments' names as soon as every stage
// has opened its segments: from then on nothing is left behind whatever
// happens to any process, because an unlinked object lives exactly as long as
// someone maps it.
func (p *parent) removeNamesOnceAttached(nstages int) {
	if p.segs[0].removed {
		return
	}
	ctl := p.ctl.Ptr()
	for i := range nstages {
		if ctl.Stage[i].State.Load() == stateStarting {
			return
		}
	}
	p.removeNames()
}

func (p *parent) removeNames() {
	for _, s := range p.segs {
		if s.removed {
			continue
		}
		if err := segment.Remove(s.spec); err != nil && !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(os.Stderr, "pipeline: remove %s: %v\n", s.spec, err)
			continue
		}
		s.removed = true
	}
}

// cleanup runs on every way out of parentMain.
func (p *parent) cleanup() {
	p.removeNames()
	for _, s := range p.segs {
		_ = s.handle.Close()
	}
	if p.tmpDir != "" {
		_ = os.RemoveAll(p.tmpDir)
	}
}

func (p *parent) summary(failed []string) int {
	c := p.ctl.Ptr()
	cfg := p.cfg
	secs := float64(c.LastSeen-c.FirstStamp) / 1e9
	out := os.Stdout
	fmt.Fprintf(out, "pipeline: %s items of %d B: source -> %d transform(s) -> sink, %d processes, %s rings of %d\n",
		count(uint64(cfg.n)), cfg.elem, cfg.stages, cfg.stages+2, cfg.backend, cfg.capacity)
	if c.LastSeen > 0 && secs > 0 {
		rate := float64(cfg.n) / secs
		fmt.Fprintf(out, "  time        %.3f s, first item written to last item checked\n", secs)
		fmt.Fprintf(out, "  throughput  %s items/s, %.0f MB/s through each ring\n", count(uint64(rate)), rate*float64(cfg.elem)/1e6)
		h := c.Hist[:]
		fmt.Fprintf(out, "  latency     p50 %s  p99 %s  p99.9 %s  max %s  (source stamp to sink, CLOCK_MONOTONIC)\n",
			dur(histQuantile(h, 0.5)), dur(histQuantile(h, 0.99)), dur(histQuantile(h, 0.999)), dur(histQuantile(h, 1)))
	}
	bad := c.OutOfOrder + c.BadSum + c.BadPayload
	for i := range cfg.stages + 2 {
		bad += c.Stage[i].Bad.Load()
	}
	ok := len(failed) == 0 && c.EndOK == 1 && c.Received == uint64(cfg.n) && bad == 0
	if ok {
		fmt.Fprintf(out, "  verified    %s of %s items, in order, checksums and payloads right, end count and xor right at every hop\n",
			count(c.Received), count(uint64(cfg.n)))
	} else {
		fmt.Fprintf(out, "  FAILED      %d of %d items reached the sink: %d out of order, %d bad checksums, %d bad payloads, %d bad items in transit\n",
			c.Received, cfg.n, c.OutOfOrder, c.BadSum, c.BadPayload, bad-c.OutOfOrder-c.BadSum-c.BadPayload)
		for _, f := range failed {
			fmt.Fprintf(out, "              %s\n", f)
		}
	}
	removed := 0
	for _, s := range p.segs {
		if s.removed {
			removed++
		}
	}
	fmt.Fprintf(out, "  segments    %d created, %d removed\n", len(p.segs), removed)
	if !ok {
		return 1
	}
	return 0
}

// count formats n with a metric suffix: 5000000 -> "5M", 1234567 -> "1.23M".
func count(n uint64) string {
	f := float64(n)
	for _, u := range []struct {
		div float64
		sfx string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if f >= u.div {
			s := strconv.FormatFloat(f/u.div, 'f', 2, 64)
			s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
			return s + u.sfx
		}
	}
	return strconv.FormatUint(n, 10)
}

// dur formats nanoseconds with three significant digits.
func dur(ns uint64) string {
	d := time.Duration(ns)
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", ns)
	case d < time.Millisecond:
		return fmt.Sprintf("%.3gµs", float64(ns)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.3gms", float64(ns)/1e6)
	}
	return fmt.Sprintf("%.3gs", float64(ns)/1e9)
}
