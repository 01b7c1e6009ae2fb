package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/shmmap"
)

func parentMain(cfg config) int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)

	spec, remove := cfg.segment, !cfg.keep
	if spec == "" {
		spec, remove = fmt.Sprintf("posix:/shmkit-kvcache-%d", os.Getpid()), true
	}
	cache, err := shmmap.Create[Key, Entry](spec, cfg.capacity)
	if errors.Is(err, fs.ErrExist) {
		cache, err = shmmap.Open[Key, Entry](spec)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvcache:", err)
		return 1
	}
	defer cache.Close()
	if remove {
		// Removing the name now would be fine for the workers we start
		// (they could inherit it like the counters); it stays named so
		// that `shmctl stat` can look at it while the example runs.
		defer func() {
			if err := shmmap.Remove(spec); err != nil && !errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintln(os.Stderr, "kvcache:", err)
			}
		}()
	}
	startLen := cache.Len()
	cv, err := layout.CreateValue[counters]("memfd:kvcache-counters")
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvcache:", err)
		return 1
	}
	defer cv.Close()
	ctr := cv.Ptr()
	fmt.Printf("kvcache: %d workers x %d lookups over %d keys (Zipf %.2f), cache %s: %d of %d keys cached\n",
		cfg.workers, cfg.lookups, cfg.keys, cfg.zipf, spec, startLen, cache.Cap())

	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvcache:", err)
		return 1
	}
	type exit struct {
		w   int
		err error
	}
	exits := make(chan exit, cfg.workers)
	var procs []*exec.Cmd
	start := time.Now()
	for w := range cfg.workers {
		cmd := exec.Command(exe, os.Args[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.ExtraFiles = []*os.File{cv.Segment().Raw().File()} // fd 3
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		cmd.Env = append(os.Environ(),
			envWorker+"="+strconv.Itoa(w),
			envParent+"="+strconv.Itoa(os.Getpid()),
			envCache+"="+spec)
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "kvcache:", err)
			for _, c := range procs {
				_ = c.Process.Kill()
			}
			return 1
		}
		procs = append(procs, cmd)
		go func() { exits <- exit{w, cmd.Wait()} }()
	}

	total := func() (t totals) {
		for w := range cfg.workers {
			c := &ctr.W[w]
			t.lookups += c.Lookups.Load()
			t.hits += c.Hits.Load()
			t.misses += c.Misses.Load()
			t.stored += c.Stored.Load()
			t.raced += c.Raced.Load()
			t.full += c.Full.Load()
			t.bad += c.Bad.Load()
		}
		return t
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	failed := 0
	var interrupted os.Signal
	for running := cfg.workers; running > 0; {
		select {
		case s := <-sigs:
			if interrupted == nil {
				interrupted = s
				for _, c := range procs {
					_ = c.Process.Signal(syscall.SIGTERM)
				}
			}
		case ex := <-exits:
			running--
			if ex.err != nil && interrupted == nil {
				fmt.Fprintf(os.Stderr, "kvcache: worker %d: %v\n", ex.w, ex.err)
				failed++
			}
		case <-tick.C:
			t := total()
			fmt.Printf("kvcache: %d lookups, hit rate %.1f%%, %d keys cached\n",
				t.lookups, 100*float64(t.hits)/float64(max(t.lookups, 1)), cache.Len())
		}
	}
	elapsed := time.Since(start)
	if interrupted != nil {
		fmt.Printf("kvcache: %v: stopped after %d lookups\n", interrupted, total().lookups)
		return 128 + int(interrupted.(syscall.Signal))
	}

	t := total()
	lookups, hits, misses := t.lookups, t.hits, t.misses
	stored, raced, full, bad := t.stored, t.raced, t.full, t.bad
	fmt.Printf("kvcache: %d lookups in %.2fs (%.0f/s): %d hits (%.1f%%), %d misses\n",
		lookups, elapsed.Seconds(), float64(lookups)/elapsed.Seconds(), hits, 100*float64(hits)/float64(max(lookups, 1)), misses)
	fmt.Printf("kvcache: misses: %d stored, %d lost a race to another worker, %d not cached (full)\n", stored, raced, full)
	for w := range cfg.workers {
		c := &ctr.W[w]
		fmt.Printf("  worker %d: %d hits, %d misses\n", w, c.Hits.Load(), c.Misses.Load())
	}

	// The books: every lookup is a hit or a miss, every miss stored, lost a
	// race or found the cache full, the cache grew by what was stored, and
	// every cached value is right.
	var problems []string
	if want := uint64(cfg.workers * cfg.lookups); lookups != want || hits+misses != lookups {
		problems = append(problems, fmt.Sprintf("%d lookups (%d hits + %d misses), want %d", lookups, hits, misses, want))
	}
	if stored+raced+full != misses {
		problems = append(problems, fmt.Sprintf("%d misses but %d stored + %d raced + %d full", misses, stored, raced, full))
	}
	if n := cache.Len(); n != startLen+int(stored) {
		problems = append(problems, fmt.Sprintf("cache holds %d keys, want %d + %d stored", n, startLen, stored))
	}
	if bad != 0 {
		problems = append(problems, fmt.Sprintf("%d hits returned a wrong entry", bad))
	}
	wrong, n := 0, 0
	for k, e := range cache.All() {
		n++
		if e.Value != expensive(k.N, cfg.rounds) || e.Check != check(k.N, e.Value) {
			wrong++
		}
	}
	if wrong != 0 {
		problems = append(problems, fmt.Sprintf("%d of %d cached values are wrong", wrong, n))
	}
	if failed != 0 {
		problems = append(problems, fmt.Sprintf("%d workers failed", failed))
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Println("kvcache: FAILED:", p)
		}
		return 1
	}
	fmt.Printf("kvcache: verified: the counters balance and all %d cached values are right\n", n)
	return 0
}

// totals sums the workers' counters.
type totals struct {
	lookups, hits, misses, stored, raced, full, bad uint64
}
