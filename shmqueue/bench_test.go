package shmqueue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmkit/shmkit/internal/baseline"
	"github.com/shmkit/shmkit/internal/sysv"
	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/layout"
)

// Cross-process throughput: P producer processes push N items in total, C
// consumer processes pop them all. The clock starts when every child is
// attached and ready (process start-up excluded) and stops when the last
// consumer has seen the end of the stream. Transports:
//
//	futex, sysv              Queue[T] with that backend, one Push/Pop per item
//	futex-batch, sysv-batch  PushBatch/PopBatch with 64-item buffers
//	msgq                     a System V message queue, one msgsnd/msgrcv per item
//	pipe                     a pipe, one write/read per item (writes <= PIPE_BUF are atomic)
//
// Run: go test -run '^$' -bench Throughput -benchtime 2000000x ./shmqueue

// item64 is the 64-byte item.
type item64 [8]uint64

// benchCtl coordinates a benchmark run; it lives in its own segment.
type benchCtl struct {
	ready    atomic.Int32
	start    atomic.Int32
	prodLeft atomic.Int32
	_        int32
	finish   [16]atomic.Int64 // CLOCK_MONOTONIC ns at which each consumer finished
}

func monoNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// benchArgs: transport, queue spec or msgq id, ctl spec, index, count, size, batch, consumers.
type benchArgs struct {
	transport, target, ctl string
	idx, count, size       int
	batch, consumers       int
}

func (a benchArgs) strings() []string {
	return []string{a.transport, a.target, a.ctl, strconv.Itoa(a.idx), strconv.Itoa(a.count), strconv.Itoa(a.size), strconv.Itoa(a.batch), strconv.Itoa(a.consumers)}
}

func parseBenchArgs(args []string) (benchArgs, error) {
	if len(args) != 8 {
		return benchArgs{}, fmt.Errorf("want 8 args, got %q", args)
	}
	var a benchArgs
	a.transport, a.target, a.ctl = args[0], args[1], args[2]
	ints := []*int{&a.idx, &a.count, &a.size, &a.batch, &a.consumers}
	for i, p := range ints {
		v, err := strconv.Atoi(args[3+i])
		if err != nil {
			return a, err
		}
		*p = v
	}
	return a, nil
}

// attachCtl opens the control value and announces readiness, then waits
// for the start signal.
func attachCtl(spec string) (*layout.Value[benchCtl], *benchCtl, error) {
	v, err := layout.OpenValue[benchCtl](spec)
	if err != nil {
		return nil, nil, err
	}
	c := v.Ptr()
	c.ready.Add(1)
	for c.start.Load() == 0 {
		time.Sleep(20 * time.Microsecond)
	}
	return v, c, nil
}

var benchProducer = testproc.Register("shmqueue-bench-producer", func(args []string) error {
	a, err := parseBenchArgs(args)
	if err != nil {
		return err
	}
	switch a.transport {
	case "msgq", "pipe":
		return baselineProducer(a)
	}
	if a.size == 8 {
		return queueProducer(a, func(i uint64) uint64 { return i })
	}
	return queueProducer(a, func(i uint64) item64 { return item64{i, i, i, i, i, i, i, i} })
})

var benchConsumer = testproc.Register("shmqueue-bench-consumer", func(args []string) error {
	a, err := parseBenchArgs(args)
	if err != nil {
		return err
	}
	switch a.transport {
	case "msgq", "pipe":
		return baselineConsumer(a)
	}
	if a.size == 8 {
		return queueConsumer[uint64](a)
	}
	return queueConsumer[item64](a)
})

func queueProducer[T any](a benchArgs, mk func(uint64) T) error {
	q, err := Open[T](a.target)
	if err != nil {
		return err
	}
	defer q.Close()
	v, c, err := attachCtl(a.ctl)
	if err != nil {
		return err
	}
	defer v.Close()
	ctx := context.Background()
	if a.batch <= 1 {
		for i := range a.count {
			if err := q.Push(ctx, mk(uint64(i))); err != nil {
				return err
			}
		}
	} else {
		buf := make([]T, a.batch)
		for i := 0; i < a.count; {
			n := min(a.batch, a.count-i)
			for j := range n {
				buf[j] = mk(uint64(i + j))
			}
			if _, err := q.PushBatch(ctx, buf[:n]); err != nil {
				return err
			}
			i += n
		}
	}
	if c.prodLeft.Add(-1) == 0 {
		return q.CloseWrites()
	}
	return nil
}

func queueConsumer[T any](a benchArgs) error {
	q, err := Open[T](a.target)
	if err != nil {
		return err
	}
	defer q.Close()
	v, c, err := attachCtl(a.ctl)
	if err != nil {
		return err
	}
	defer v.Close()
	ctx := context.Background()
	buf := make([]T, max(a.batch, 1))
	for {
		var err error
		if a.batch <= 1 {
			buf[0], err = q.Pop(ctx)
		} else {
			_, err = q.PopBatch(ctx, buf)
		}
		if errors.Is(err, ErrClosed) {
			break
		}
		if err != nil {
			return err
		}
	}
	c.finish[a.idx].Store(monoNow())
	return nil
}

// The pipe is passed as fd 3 (read end, consumers) or fd 3 (write end,
// producers).
func baselineProducer(a benchArgs) error {
	v, c, err := attachCtl(a.ctl)
	if err != nil {
		return err
	}
	defer v.Close()
	buf := make([]byte, 8+a.size)
	if a.transport == "pipe" {
		w := os.NewFile(3, "pipe-w")
		for range a.count {
			if _, err := w.Write(buf[8:]); err != nil {
				return err
			}
		}
		return w.Close() // consumers see EOF when every writer is done
	}
	id, _ := strconv.Atoi(a.target)
	buf[0] = 1 // message type 1: data
	for range a.count {
		if err := msgSendRetry(id, buf); err != nil {
			return err
		}
	}
	if c.prodLeft.Add(-1) == 0 {
		buf[0] = 2 // type 2: end of stream, one per consumer
		for range a.consumers {
			if err := msgSendRetry(id, buf); err != nil {
				return err
			}
		}
	}
	return nil
}

func baselineConsumer(a benchArgs) error {
	v, c, err := attachCtl(a.ctl)
	if err != nil {
		return err
	}
	defer v.Close()
	buf := make([]byte, 8+a.size)
	if a.transport == "pipe" {
		r := os.NewFile(3, "pipe-r")
		for {
			if _, err := io.ReadFull(r, buf[8:]); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return err
			}
		}
	} else {
		id, _ := strconv.Atoi(a.target)
		for {
			_, err := sysv.Msgrcv(id, buf, 0, 0)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil {
				return err
			}
			if buf[0] == 2 {
				break
			}
		}
	}
	c.finish[a.idx].Store(monoNow())
	return nil
}

func msgSendRetry(id int, buf []byte) error {
	for {
		err := sysv.Msgsnd(id, buf, 0)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// runThroughput runs one measurement of n items and returns items/s.
func runThroughput(tb testing.TB, transport string, producers, consumers, n, size int) float64 {
	tb.Helper()
	ctlSpec := newSpec(tb)
	cv, err := layout.CreateValue[benchCtl](ctlSpec)
	if err != nil {
		tb.Fatal(err)
	}
	defer cv.Close()
	ctl := cv.Ptr()
	ctl.prodLeft.Store(int32(producers))

	batch := 1
	kind := transport
	switch transport {
	case "futex-batch":
		kind, batch = "futex", 64
	case "sysv-batch":
		kind, batch = "sysv", 64
	}
	target := ""
	var prodFiles, consFiles []*os.File
	switch kind {
	case "futex", "sysv":
		target = newSpec(tb)
		b := BackendFutex
		if kind == "sysv" {
			b = BackendSysV
		}
		var err error
		if size == 8 {
			var q *Queue[uint64]
			q, err = Create[uint64](target, 1024, WithBackend(b))
			if err == nil {
				defer q.Close()
			}
		} else {
			var q *Queue[item64]
			q, err = Create[item64](target, 1024, WithBackend(b))
			if err == nil {
				defer q.Close()
			}
		}
		if err != nil {
			tb.Fatal(err)
		}
	case "msgq":
		id, err := sysv.Msgget(sysv.IPC_PRIVATE, sysv.IPC_CREAT|0o600)
		if err != nil {
			tb.Fatal(err)
		}
		defer sysv.MsgctlRmid(id)
		target = strconv.Itoa(id)
	case "pipe":
		r, w, err := os.Pipe()
		if err != nil {
			tb.Fatal(err)
		}
		defer r.Close()
		prodFiles, consFiles = []*os.File{w}, []*os.File{r}
		defer w.Close()
	default:
		tb.Fatalf("unknown transport %s", transport)
	}

	var procs []*testproc.Proc
	start := func(child testproc.Child, a benchArgs, files []*os.File) {
		cmd := child.Command(tb, a.strings()...)
		cmd.ExtraFiles = files
		procs = append(procs, testproc.StartCmd(tb, cmd))
	}
	for i := range consumers {
		start(benchConsumer, benchArgs{transport: kind, target: target, ctl: ctlSpec, idx: i, size: size, batch: batch, consumers: consumers}, consFiles)
	}
	for i := range producers {
		cnt := n / producers
		if i == 0 {
			cnt += n % producers
		}
		start(benchProducer, benchArgs{transport: kind, target: target, ctl: ctlSpec, idx: i, count: cnt, size: size, batch: batch, consumers: consumers}, prodFiles)
	}
	for _, f := range prodFiles {
		f.Close() // only the producers hold the write end now
	}
	deadline := time.Now().Add(time.Minute)
	for int(ctl.ready.Load()) < producers+consumers {
		for _, p := range procs {
			select {
			case <-p.Done():
				tb.Fatalf("child exited before start: %s", p.Output())
			default:
			}
		}
		if time.Now().After(deadline) {
			tb.Fatal("children never became ready")
		}
		time.Sleep(100 * time.Microsecond)
	}
	t0 := monoNow()
	ctl.start.Store(1)
	for _, p := range procs {
		if err := p.Wait(5 * time.Minute); err != nil {
			tb.Fatalf("child: %v\n%s", err, p.Output())
		}
	}
	var end int64
	for i := range consumers {
		end = max(end, ctl.finish[i].Load())
	}
	return float64(n) / (float64(end-t0) / 1e9)
}

func BenchmarkThroughput(b *testing.B) {
	for _, transport := range []string{"futex", "futex-batch", "sysv", "sysv-batch", "msgq", "pipe"} {
		for _, pc := range [][2]int{{1, 1}, {2, 2}} {
			for _, size := range []int{8, 64} {
				name := fmt.Sprintf("%s/%dP%dC/%dB", transport, pc[0], pc[1], size)
				b.Run(name, func(b *testing.B) {
					rate := runThroughput(b, transport, pc[0], pc[1], max(b.N, 1000), size)
					b.ReportMetric(1e9/rate, "ns/op")
					b.ReportMetric(rate/1e6, "Mitems/s")
				})
			}
		}
	}
}

// BenchmarkBaselinePackage cross-checks the pipe and msgq figures with
// internal/baseline (the parent process is the single sender there).
func BenchmarkBaselinePackage(b *testing.B) {
	for _, tr := range []baseline.Transport{baseline.Pipe, baseline.Msgq} {
		for _, size := range []int{8, 64} {
			b.Run(fmt.Sprintf("%s/1P1C/%dB", tr, size), func(b *testing.B) {
				r, err := baseline.Throughput(tr, max(b.N, 1000), size)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(r.PerOp().Nanoseconds()), "ns/op")
				b.ReportMetric(r.PerSecond()/1e6, "Mitems/s")
			})
		}
	}
}

// TestThroughputSmoke runs every transport briefly so the benchmark code
// stays correct under go test (and -race).
func TestThroughputSmoke(t *testing.T) {
	for _, transport := range []string{"futex", "futex-batch", "sysv", "sysv-batch", "msgq", "pipe"} {
		t.Run(transport, func(t *testing.T) {
			rate := runThroughput(t, transport, 2, 2, 4000, 64)
			t.Logf("%s 2P2C 64B: %.2f M items/s", transport, rate/1e6)
		})
	}
}

// BenchmarkPushPopLocal measures the uncontended fast path: one goroutine
// pushes and pops in turn (no peer, no waiting).
func BenchmarkPushPopLocal(b *testing.B) {
	for _, bk := range backends {
		b.Run(bk.String(), func(b *testing.B) {
			q, _ := create[uint64](b, 1024, WithBackend(bk))
			ctx := context.Background()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := q.Push(ctx, uint64(i)); err != nil {
					b.Fatal(err)
				}
				if _, err := q.Pop(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBatchLocal measures the per-item cost of PushBatch/PopBatch of
// 64 items in one goroutine.
func BenchmarkBatchLocal(b *testing.B) {
	for _, bk := range backends {
		b.Run(bk.String(), func(b *testing.B) {
			q, _ := create[uint64](b, 1024, WithBackend(bk))
			ctx := context.Background()
			buf := make([]uint64, 64)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := q.PushBatch(ctx, buf); err != nil {
					b.Fatal(err)
				}
				if _, err := q.PopBatch(ctx, buf); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/item")
		})
	}
}
