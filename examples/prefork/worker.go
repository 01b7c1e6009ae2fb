package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/shmqueue"
)

// The worker's environment. Its segments are inherited descriptors: jobs is
// fd 3, results fd 4, the table fd 5 (exec.Cmd.ExtraFiles, in that order).
const (
	envWorker = "SHMKIT_PREFORK_WORKER" // the worker's slot number
	envParent = "SHMKIT_PREFORK_PARENT" // the parent's pid
	jobsFD    = "fd:3"
	resultsFD = "fd:4"
	tableFD   = "fd:5"
)

func workerMain(cfg config, slotArg string) int {
	// Ctrl-C reaches the whole process group; the parent decides what
	// happens and tells workers with SIGTERM.
	signal.Ignore(syscall.SIGINT)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if strconv.Itoa(os.Getppid()) != os.Getenv(envParent) {
		return 1 // the parent died before Pdeathsig was in place
	}
	slot, err := strconv.Atoi(slotArg)
	if err == nil && (slot < 0 || slot >= maxWorkers) {
		err = fmt.Errorf("slot %d out of range", slot)
	}
	if err == nil {
		err = work(ctx, cfg, slot)
	}
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "prefork: worker %s: %v\n", slotArg, err)
		return 1
	}
	return 0
}

func work(ctx context.Context, cfg config, slot int) error {
	jobs, err := shmqueue.Open[Job](jobsFD)
	if err != nil {
		return err
	}
	defer jobs.Close()
	results, err := shmqueue.Open[Result](resultsFD)
	if err != nil {
		return err
	}
	defer results.Close()
	tv, err := layout.OpenValue[table](tableFD)
	if err != nil {
		return err
	}
	defer tv.Close()
	me := &tv.Ptr().Slot[slot]
	pid := int32(os.Getpid())

	for {
		job, err := jobs.Pop(ctx)
		if errors.Is(err, shmqueue.ErrClosed) {
			return nil // all jobs done: the parent closed the queue
		}
		if err != nil {
			return err
		}
		// Killed here, the job is in nobody's slot: the parent's
		// reconciliation finds it (tests arm this crash point).
		if crashpoint.Enabled {
			crashpoint.Hit("prefork.popped")
		}
		me.Job.Store(job.ID + 1)
		if cfg.verbose {
			fmt.Printf("worker %d [pid %d]: job %d started (attempt %d)\n", slot, pid, job.ID, job.Attempt)
		}
		select {
		case <-time.After(time.Duration(job.WorkUs) * time.Microsecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		r := Result{JobID: job.ID, Attempt: job.Attempt, Slot: uint32(slot), PID: pid, Output: output(job.ID, job.Input)}
		if err := results.Push(ctx, r); err != nil {
			return err
		}
		// Only now is the job safe in the results queue.
		me.Job.Store(0)
		me.Done.Add(1)
	}
}
