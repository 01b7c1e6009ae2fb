// Command pipeline runs a multi-stage, multi-process pipeline over shmkit
// rings: one command, several processes, every item checked.
//
//	go run ./examples/pipeline                 # 10M items, 2 transforms, posix segments
//	go run ./examples/pipeline -n 20000000 -stages 4 -elem 256 -backend memfd
//
// The parent process creates the segments, re-executes its own binary once
// per stage (source, transforms, sink), shows a progress line while the items
// flow, and prints a summary: throughput, source-to-sink latency percentiles,
// and the verification result. Its exit status is 0 when every item arrived
// intact and in order, 1 when verification failed or a stage failed, and
// 130 (SIGINT) or 143 (SIGTERM) when interrupted. It removes every segment it
// made in all of these cases.
//
// How the pieces fit:
//
//	source ──ring0──▶ transform 1 ──ring1──▶ ... ──ringN──▶ sink
//	   └──────────── control block (counters, results) ─────────┘
//
// Every ring is a shmring.Ring of fixed-size items (16, 64, 256 or 1024 bytes)
// used through its zero-copy interface: the source fills claimed slots in
// place and publishes a batch with one atomic store; a transform reads its
// input slots in place (Peek), writes its output slots in place (Claim),
// publishes, then releases the input (Advance); the sink checks items in
// place. The control block is a layout.Value holding one cache line of
// atomic counters per stage, which the parent reads for the progress line.
//
// Segments are removed by name as soon as every stage has attached them,
// so nothing is left in /dev/shm (or the SysV table, or the temp directory)
// even if the parent is SIGKILLed later; the stages keep their mappings.
// Stages get Pdeathsig, so they die with the parent.
package main

import (
	"flag"
	"fmt"
	"os"
)

// config is the command line. The parent passes the same values to each
// stage process.
type config struct {
	n        int
	stages   int
	backend  string
	elem     int
	capacity int
	batch    int
	rate     float64
	progress bool
}

func (c *config) flags(fs *flag.FlagSet) {
	fs.IntVar(&c.n, "n", 10_000_000, "number of items")
	fs.IntVar(&c.stages, "stages", 2, fmt.Sprintf("number of transform stages between source and sink (0-%d)", maxTransforms))
	fs.StringVar(&c.backend, "backend", "posix", "segment backend: posix, memfd, file or sysv")
	fs.IntVar(&c.elem, "elem", 64, "item size in bytes: 16, 64, 256 or 1024")
	fs.IntVar(&c.capacity, "cap", 4096, "ring capacity in items (a power of two)")
	fs.IntVar(&c.batch, "batch", 256, "most items a stage claims or peeks at once")
	fs.Float64Var(&c.rate, "rate", 0, "items per second the source writes (0: as fast as the pipeline goes)")
	fs.BoolVar(&c.progress, "progress", true, "show progress on stderr")
}

func (c *config) validate() error {
	switch {
	case c.n < 1 || c.n > 1<<32-2:
		return fmt.Errorf("-n %d: want 1 to %d", c.n, 1<<32-2)
	case c.stages < 0 || c.stages > maxTransforms:
		return fmt.Errorf("-stages %d: want 0 to %d", c.stages, maxTransforms)
	case c.elem != 16 && c.elem != 64 && c.elem != 256 && c.elem != 1024:
		return fmt.Errorf("-elem %d: want 16, 64, 256 or 1024", c.elem)
	case c.capacity < 2 || c.capacity&(c.capacity-1) != 0:
		return fmt.Errorf("-cap %d: want a power of two, at least 2", c.capacity)
	case c.batch < 1:
		return fmt.Errorf("-batch %d: want at least 1", c.batch)
	case c.rate < 0:
		return fmt.Errorf("-rate %g: want 0 or more", c.rate)
	}
	switch c.backend {
	case "posix", "memfd", "file", "sysv":
	default:
		return fmt.Errorf("-backend %q: want posix, memfd, file or sysv", c.backend)
	}
	return nil
}

// args renders c as the command line of a stage process.
func (c *config) args() []string {
	return []string{
		fmt.Sprintf("-n=%d", c.n), fmt.Sprintf("-stages=%d", c.stages),
		"-backend=" + c.backend, fmt.Sprintf("-elem=%d", c.elem),
		fmt.Sprintf("-cap=%d", c.capacity), fmt.Sprintf("-batch=%d", c.batch),
		fmt.Sprintf("-rate=%g", c.rate),
	}
}

func main() {
	var cfg config
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	cfg.flags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: pipeline [flags]\n\nRuns source -> transforms -> sink as separate processes over shared-memory rings.\n\n")
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:])
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "pipeline:", err)
		os.Exit(2)
	}
	if role := os.Getenv(envStage); role != "" {
		os.Exit(stageMain(cfg, role))
	}
	os.Exit(parentMain(cfg))
}
