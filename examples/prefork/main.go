// Command prefork is a process pool: a parent starts N worker processes
// (its own binary, re-executed), feeds them jobs through a shared queue and
// collects their results from a second one. Kill a worker in the middle of
// a job and the parent starts a replacement and hands the job out again.
//
//	go run ./examples/prefork                       # 4 workers, 200 jobs
//	go run ./examples/prefork -chaos 5              # the parent itself SIGKILLs 5 busy workers
//	go run ./examples/prefork -v                    # one line per job; kill -9 a worker pid by hand
//
// Shared state, all in memfd segments handed to the workers as inherited
// descriptors (so there is no name to clean up, and nothing can outlive the
// pool):
//
//	jobs     shmqueue.Queue[Job]     parent -> workers (MPMC: every worker pops)
//	results  shmqueue.Queue[Result]  workers -> parent
//	table    layout.Value[table]     one line per worker slot: pid, job in hand
//
// Not losing a job. A queue's Pop removes the job, so a worker that dies
// after popping takes it along. Each worker therefore writes the ID of the
// job it holds into its slot of the table, and clears it only after its
// result is in the results queue; when a worker dies, the parent reads the
// dead worker's slot and queues that job again. That leaves one small
// window: a worker killed inside Pop, or between Pop returning and the slot
// being written, holds a job that no slot shows. For that the parent
// reconciles: after a worker death, once the jobs queue is empty and no live
// worker holds a job, any job neither finished nor held is queued again.
//
// So every job runs at least once, and a job may run twice (the dead
// worker's result may have been pushed before it died, or a live worker
// may have been in that window): the parent keeps the first result of each
// job and counts the duplicates. Results are checked against the expected
// output. The exit status is 0 when every job has exactly one accepted,
// correct result, 1 otherwise, and 130/143 when interrupted.
package main

import (
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// Job is one unit of work, as it sits in the jobs queue.
type Job struct {
	ID      uint64
	Attempt uint32 // 1 for the first hand-out, 2 after a re-queue, ...
	WorkUs  uint32 // how long the job takes, microseconds
	Input   uint64
}

// Result is a worker's answer, as it sits in the results queue.
type Result struct {
	JobID   uint64
	Attempt uint32
	Slot    uint32 // the worker's slot in the table
	PID     int32  // the worker's process id
	_       uint32
	Output  uint64
}

// maxWorkers bounds -workers: the table has one line per worker slot.
const maxWorkers = 64

// workerSlot is one worker's line in the shared table. Only the worker in
// the slot writes Job and Done; the parent reads them, and writes PID and
// clears Job when it replaces a dead worker (the slot has no live writer
// then).
type workerSlot struct {
	PID  atomic.Int32
	_    uint32
	Job  atomic.Uint64 // ID+1 of the job in hand; 0 when idle
	Done atomic.Uint64 // results pushed
	_    [128 - 24]byte
}

type table struct {
	Slot [maxWorkers]workerSlot
}

// output is the result of job id with input in: what workers compute and the
// parent checks.
func output(id, in uint64) uint64 {
	x := id*0x9e3779b97f4a7c15 ^ in
	x ^= x >> 31
	x *= 0xbf58476d1ce4e5b9
	return x ^ x>>29
}

type config struct {
	workers int
	jobs    int
	work    time.Duration
	chaos   int
	verbose bool
}

func main() {
	var cfg config
	flag.IntVar(&cfg.workers, "workers", 4, fmt.Sprintf("worker processes (1-%d)", maxWorkers))
	flag.IntVar(&cfg.jobs, "jobs", 200, "jobs to run")
	flag.DurationVar(&cfg.work, "work", 10*time.Millisecond, "how long each job takes")
	flag.IntVar(&cfg.chaos, "chaos", 0, "SIGKILL this many busy workers during the run, to show recovery")
	flag.BoolVar(&cfg.verbose, "v", false, "print a line per job as workers start it")
	flag.Parse()
	if cfg.workers < 1 || cfg.workers > maxWorkers || cfg.jobs < 1 || cfg.work < 0 || cfg.work > time.Hour || cfg.chaos < 0 {
		fmt.Fprintln(os.Stderr, "prefork: bad flags")
		flag.Usage()
		os.Exit(2)
	}
	if slot := os.Getenv(envWorker); slot != "" {
		os.Exit(workerMain(cfg, slot))
	}
	os.Exit(parentMain(cfg))
}
