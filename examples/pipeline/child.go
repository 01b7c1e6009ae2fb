package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

// Exit status of a stage process.
const (
	exitStageOK          = 0
	exitStageFailed      = 1 // an error: the stream may be stuck
	exitStageMismatch    = 2 // items failed verification; the stream went on to the end
	exitStageInterrupted = 3 // stopped by the parent's SIGTERM
)

// envCorrupt names an item that the first transform damages (for tests).
const envCorrupt = "SHMKIT_PIPELINE_CORRUPT"

// stageMain is the body of a stage process: the parent's own binary,
// re-executed with envStage set.
func stageMain(cfg config, index string) int {
	// Ctrl-C at a terminal signals the whole process group. The parent
	// decides what happens (it stops the stages with SIGTERM), so a stage
	// ignores SIGINT rather than die in the middle of a batch on its own.
	signal.Ignore(syscall.SIGINT)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()

	i, err := strconv.Atoi(index)
	if err != nil || i < 0 || i > cfg.stages+1 {
		fmt.Fprintf(os.Stderr, "pipeline: bad %s=%q\n", envStage, index)
		return exitStageFailed
	}
	// Pdeathsig only covers a parent that dies after the stage started; one
	// that died before leaves this process orphaned (reparented), which we
	// can see.
	if strconv.Itoa(os.Getppid()) != os.Getenv(envParent) {
		fmt.Fprintln(os.Stderr, "pipeline: parent is gone")
		return exitStageFailed
	}
	st := &stage{cfg: cfg, index: i, in: os.Getenv(envIn), out: os.Getenv(envOut), corruptSeq: -1}
	if f, ok := os.LookupEnv(envCorrupt); ok && i == 1 {
		st.corruptSeq, _ = strconv.ParseInt(f, 10, 64)
	}
	err = runStage(ctx, st, os.Getenv(envControl))
	switch {
	case err == nil:
		return exitStageOK
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return exitStageInterrupted
	}
	fmt.Fprintf(os.Stderr, "pipeline: %s: %v\n", stageName(cfg, i), err)
	if errors.Is(err, errCheck) {
		return exitStageMismatch
	}
	return exitStageFailed
}
