package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/shmqueue"
)

type workerExit struct {
	slot int
	cmd  *exec.Cmd
	err  error
}

// pool is the parent's state. Only the main loop (run) touches it, except
// where a field says otherwise.
type pool struct {
	cfg     config
	exe     string
	jobs    *shmqueue.Queue[Job]
	results *shmqueue.Queue[Result]
	table   *layout.Value[table]
	files   []*os.File // jobs, results, table: fds 3, 4, 5 in a worker

	procs   [maxWorkers]*exec.Cmd // the live worker of each slot, nil if none
	exits   chan workerExit
	spec    []Job          // every job, by ID, as first handed out (read-only once running)
	tries   []uint32       // times each job was re-queued
	bg      sync.WaitGroup // the feeder and the collector
	done    []bool         // a correct result was accepted
	doneN   int
	queued  atomic.Int64 // re-queued jobs the feeder has not pushed yet (feeder decrements)
	fedAll  atomic.Bool  // the feeder has pushed every first attempt
	requeue chan Job

	deaths, requeuedSlot, requeuedReconcile, duplicates, wrong, chaosKills int
	suspects                                                               []uint64 // lost-job candidates at the previous tick
}

func parentMain(cfg config) int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	p := &pool{
		cfg:     cfg,
		exits:   make(chan workerExit, maxWorkers),
		spec:    make([]Job, cfg.jobs),
		done:    make([]bool, cfg.jobs),
		tries:   make([]uint32, cfg.jobs),
		requeue: make(chan Job, cfg.jobs),
	}
	for i := range p.spec {
		p.spec[i] = Job{ID: uint64(i), Attempt: 1, WorkUs: uint32(cfg.work / time.Microsecond), Input: rand.Uint64()}
	}
	if err := p.create(); err != nil {
		fmt.Fprintln(os.Stderr, "prefork:", err)
		return 1
	}
	defer p.close()
	return p.run(sigs)
}

// create makes the three segments. They are memfds: anonymous, shared with
// the workers only by inheritance, freed when the last process holding them
// exits. Nothing can be left behind.
func (p *pool) create() (err error) {
	if p.exe, err = os.Executable(); err != nil {
		return err
	}
	if p.jobs, err = shmqueue.Create[Job]("memfd:prefork-jobs", 256); err != nil {
		return err
	}
	if p.results, err = shmqueue.Create[Result]("memfd:prefork-results", 256); err != nil {
		return err
	}
	if p.table, err = layout.CreateValue[table]("memfd:prefork-table"); err != nil {
		return err
	}
	p.files = []*os.File{
		p.jobs.Segment().Raw().File(),
		p.results.Segment().Raw().File(),
		p.table.Segment().Raw().File(),
	}
	return nil
}

// close detaches from the segments once the feeder and the collector have
// returned (a Queue must not be closed while another goroutine uses it).
func (p *pool) close() {
	p.bg.Wait()
	for _, c := range []interface{ Close() error }{p.jobs, p.results, p.table} {
		if c != nil {
			_ = c.Close()
		}
	}
}

// start starts a worker in slot. Only the first generation inherits an
// armed crash point (tests use it); replacements must be able to finish.
func (p *pool) start(slot int, first bool) error {
	cmd := exec.Command(p.exe, os.Args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = p.files
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // die with the parent
	env := os.Environ()
	if !first {
		env = slices.DeleteFunc(env, func(e string) bool { return strings.HasPrefix(e, crashpoint.Env+"=") })
	}
	cmd.Env = append(env, envWorker+"="+strconv.Itoa(slot), envParent+"="+strconv.Itoa(os.Getpid()))
	if err := cmd.Start(); err != nil {
		return err
	}
	p.table.Ptr().Slot[slot].PID.Store(int32(cmd.Process.Pid))
	p.procs[slot] = cmd
	go func() { p.exits <- workerExit{slot, cmd, cmd.Wait()} }()
	return nil
}

// feed pushes every job once, then the re-queued ones, until ctx ends.
// Re-queued jobs go first: they have waited longest.
func (p *pool) feed(ctx context.Context) {
	push := func(j Job) bool { return p.jobs.Push(ctx, j) == nil }
	for i := 0; i < len(p.spec); {
		select {
		case j := <-p.requeue:
			if !push(j) {
				return
			}
			p.queued.Add(-1)
		default:
			if !push(p.spec[i]) {
				return
			}
			i++
		}
	}
	p.fedAll.Store(true)
	for {
		select {
		case j := <-p.requeue:
			if !push(j) {
				return
			}
			p.queued.Add(-1)
		case <-ctx.Done():
			return
		}
	}
}

// collect pops results and hands them to the main loop until ctx ends.
func (p *pool) collect(ctx context.Context, out chan<- Result) {
	for {
		r, err := p.results.Pop(ctx)
		if err != nil {
			return
		}
		select {
		case out <- r:
		case <-ctx.Done():
			return
		}
	}
}

func (p *pool) run(sigs <-chan os.Signal) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	for slot := range p.cfg.workers {
		if err := p.start(slot, true); err != nil {
			fmt.Fprintln(os.Stderr, "prefork:", err)
			p.stopWorkers(nil)
			return 1
		}
	}
	fmt.Printf("prefork: %d workers, %d jobs of %v each\n", p.cfg.workers, p.cfg.jobs, p.cfg.work)
	resCh := make(chan Result)
	p.bg.Add(2)
	go func() { defer p.bg.Done(); p.feed(ctx) }()
	go func() { defer p.bg.Done(); p.collect(ctx, resCh) }()

	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	lastReport := start
	maxDeaths := 10*p.cfg.workers + p.cfg.chaos
	for p.doneN < p.cfg.jobs {
		select {
		case s := <-sigs:
			fmt.Printf("prefork: %v: stopping the workers; %d of %d jobs were done\n", s, p.doneN, p.cfg.jobs)
			cancel()
			_ = p.jobs.CloseWrites()
			p.stopWorkers(nil)
			return 128 + int(s.(syscall.Signal))
		case r := <-resCh:
			p.accept(r)
		case ex := <-p.exits:
			if p.procs[ex.slot] != ex.cmd {
				continue
			}
			p.procs[ex.slot] = nil
			if err := p.replace(ex); err != nil || p.deaths > maxDeaths {
				fmt.Fprintf(os.Stderr, "prefork: giving up after %d worker deaths: %v\n", p.deaths, err)
				cancel()
				p.stopWorkers(nil)
				return 1
			}
		case now := <-tick.C:
			p.chaos()
			p.reconcile()
			if now.Sub(lastReport) >= time.Second {
				lastReport = now
				fmt.Printf("prefork: %d/%d jobs done, %d busy, %d workers replaced\n", p.doneN, p.cfg.jobs, p.busy(), p.deaths)
			}
		}
	}
	// Every job has its result: closing the jobs queue makes each worker's
	// Pop return ErrClosed, and the workers exit.
	cancel()
	_ = p.jobs.CloseWrites()
	p.stopWorkers(p.exits)
	elapsed := time.Since(start)

	ok := p.wrong == 0
	fmt.Printf("prefork: %d jobs done in %.2fs by %d workers; %d workers died and were replaced\n",
		p.doneN, elapsed.Seconds(), p.cfg.workers, p.deaths)
	fmt.Printf("prefork: %d jobs re-queued (%d found in a dead worker's slot, %d by reconciliation), %d duplicate results dropped, %d wrong results\n",
		p.requeuedSlot+p.requeuedReconcile, p.requeuedSlot, p.requeuedReconcile, p.duplicates, p.wrong)
	if !ok {
		return 1
	}
	fmt.Println("prefork: every job has exactly one correct result")
	return 0
}

// accept records a result, keeping the first one of each job.
func (p *pool) accept(r Result) {
	if r.JobID >= uint64(len(p.spec)) {
		p.wrong++
		return
	}
	if p.done[r.JobID] {
		p.duplicates++
		return
	}
	if r.Output != output(r.JobID, p.spec[r.JobID].Input) {
		p.wrong++
		fmt.Printf("prefork: job %d: wrong result from worker %d [pid %d]\n", r.JobID, r.Slot, r.PID)
		return // not done: a dead worker's or reconciliation's re-queue may still produce a right one
	}
	p.done[r.JobID] = true
	p.doneN++
}

// replace handles a worker that exited before the pool was done: it
// re-queues the job in the worker's slot and starts a replacement.
func (p *pool) replace(ex workerExit) error {
	p.deaths++
	s := &p.table.Ptr().Slot[ex.slot]
	how := "exited"
	if ex.err != nil {
		how = ex.err.Error()
	}
	what := "while idle"
	if id := s.Job.Load(); id != 0 {
		id--
		what = fmt.Sprintf("during job %d", id)
		if id < uint64(len(p.spec)) && !p.done[id] {
			p.requeueJob(id)
			p.requeuedSlot++
			what += ", job re-queued"
		}
		s.Job.Store(0)
	}
	if err := p.start(ex.slot, false); err != nil {
		return err
	}
	fmt.Printf("prefork: worker %d [pid %d] %s %s; replacement pid %d\n",
		ex.slot, ex.cmd.Process.Pid, how, what, p.procs[ex.slot].Process.Pid)
	return nil
}

func (p *pool) requeueJob(id uint64) {
	p.tries[id]++
	j := p.spec[id]
	j.Attempt = 1 + p.tries[id]
	p.queued.Add(1)
	p.requeue <- j // never blocks: capacity is the number of jobs
}

// reconcile finds jobs lost by a worker killed between taking a job and
// writing it into its slot. Such a job is in no queue and no slot. Looking
// only when every job has been handed out and both queues are empty, a job
// that is neither done nor in a live worker's slot at two ticks in a row is
// lost. (A live worker inside that window for a whole tick is all but
// impossible; if it happens, the job runs twice and the duplicate result is
// dropped.)
func (p *pool) reconcile() {
	if p.deaths == 0 || !p.fedAll.Load() || p.queued.Load() != 0 || p.jobs.Len() != 0 || p.results.Len() != 0 {
		p.suspects = p.suspects[:0]
		return
	}
	held := map[uint64]bool{}
	for slot, c := range p.procs {
		if c != nil {
			if id := p.table.Ptr().Slot[slot].Job.Load(); id != 0 {
				held[id-1] = true
			}
		}
	}
	var lost []uint64
	for id, d := range p.done {
		if !d && !held[uint64(id)] {
			lost = append(lost, uint64(id))
		}
	}
	if len(lost) > 0 && slices.Equal(lost, p.suspects) {
		for _, id := range lost {
			p.requeueJob(id)
			p.requeuedReconcile++
		}
		fmt.Printf("prefork: reconciliation: jobs %v were taken by workers that died before recording them; re-queued\n", lost)
		lost = nil
	}
	p.suspects = append(p.suspects[:0], lost...)
}

// chaos SIGKILLs a busy worker at evenly spaced points of the run (-chaos).
func (p *pool) chaos() {
	if p.chaosKills >= p.cfg.chaos || p.doneN < (p.chaosKills+1)*p.cfg.jobs/(p.cfg.chaos+1) {
		return
	}
	off := rand.IntN(p.cfg.workers)
	for i := range p.cfg.workers {
		slot := (off + i) % p.cfg.workers
		if c := p.procs[slot]; c != nil && p.table.Ptr().Slot[slot].Job.Load() != 0 {
			fmt.Printf("prefork: chaos: SIGKILL worker %d [pid %d] in the middle of job %d\n",
				slot, c.Process.Pid, p.table.Ptr().Slot[slot].Job.Load()-1)
			_ = c.Process.Signal(syscall.SIGKILL)
			p.chaosKills++
			return
		}
	}
}

func (p *pool) busy() int {
	n := 0
	for slot, c := range p.procs {
		if c != nil && p.table.Ptr().Slot[slot].Job.Load() != 0 {
			n++
		}
	}
	return n
}

// stopWorkers waits up to a few seconds for the workers to exit (they do
// once the jobs queue is closed), SIGTERMs them, and SIGKILLs what is left.
// With a nil channel it signals at once.
func (p *pool) stopWorkers(exits chan workerExit) {
	live := 0
	for _, c := range p.procs {
		if c != nil {
			live++
		}
	}
	grace := time.After(3 * time.Second)
	if exits == nil {
		exits = p.exits
		grace = time.After(0)
	}
	var kill <-chan time.Time
	for live > 0 {
		select {
		case ex := <-exits:
			if p.procs[ex.slot] == ex.cmd {
				p.procs[ex.slot] = nil
				live--
			}
		case <-grace:
			for _, c := range p.procs {
				if c != nil {
					_ = c.Process.Signal(syscall.SIGTERM)
				}
			}
			kill = time.After(2 * time.Second)
		case <-kill:
			for _, c := range p.procs {
				if c != nil {
					_ = c.Process.Signal(syscall.SIGKILL)
				}
			}
		}
	}
}
