package shmbus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/segment"
	"github.com/stretchr/testify/require"
)

func u64(s string) uint64 {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		panic(err)
	}
	return n
}

// receiver reads a bus until ErrClosed and checks every message: whole (no
// torn item), in order, no duplicate; gaps only where ErrLagged said so.
type receiver struct {
	next     uint64 // the sequence number expected next
	received uint64
	missed   uint64
	lags     uint64
}

func (r *receiver) take(v *msg) error {
	seq, err := v.check()
	if err != nil {
		return err
	}
	if seq != r.next {
		return fmt.Errorf("got message %d, want %d (received %d, missed %d)", seq, r.next, r.received, r.missed)
	}
	r.next++
	r.received++
	return nil
}

func (r *receiver) lagged(err error) bool {
	var le *LaggedError
	if !errors.As(err, &le) {
		return false
	}
	r.missed += le.Missed
	r.next += le.Missed
	r.lags++
	return true
}

// args: spec mode(next|batch|peek) slowEvery
// Subscribes from the oldest message, reads until ErrClosed, prints its
// counts. slowEvery > 0 sleeps 1ms every slowEvery messages.
var subChild = testproc.Register("bus-sub", func(a []string) error {
	spec, mode, slowEvery := a[0], a[1], u64(a[2])
	b, err := Open[msg](spec)
	if err != nil {
		return err
	}
	defer b.Close()
	s, err := b.Subscribe(FromOldest())
	if err != nil {
		return err
	}
	fmt.Println("subscribed")
	ctx := context.Background()
	var r receiver
	buf := make([]msg, 32)
	for {
		if slowEvery > 0 && r.received%slowEvery == slowEvery-1 {
			time.Sleep(time.Millisecond)
		}
		switch mode {
		case "next":
			v, err := s.Next(ctx)
			if err == nil {
				err = r.take(&v)
			}
			if err != nil && !r.lagged(err) {
				return r.end(err)
			}
		case "batch":
			n, err := s.NextBatch(ctx, buf)
			for i := range n {
				if err := r.take(&buf[i]); err != nil {
					return err
				}
			}
			if err != nil && !r.lagged(err) {
				return r.end(err)
			}
		case "peek":
			p, err := s.PeekWait(ctx, 16)
			for i := range p {
				if err := r.take(&p[i]); err != nil {
					return err
				}
			}
			if err == nil {
				err = s.Release(len(p))
			}
			if err != nil && !r.lagged(err) {
				return r.end(err)
			}
		}
	}
})

func (r *receiver) end(err error) error {
	if !errors.Is(err, ErrClosed) {
		return err
	}
	fmt.Printf("received %d missed %d lags %d\n", r.received, r.missed, r.lags)
	return nil
}

// counts parses a bus-sub child's final line.
func counts(t *testing.T, out string) (received, missed, lags uint64) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if _, err := fmt.Sscanf(line, "received %d missed %d lags %d", &received, &missed, &lags); err == nil {
			return
		}
	}
	t.Fatalf("no counts in child output:\n%s", out)
	return
}

// waitSubscribers waits until n subscribers are recorded.
func waitSubscribers(t *testing.T, b *Bus[msg], procs ...*testproc.Proc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := b.Stats()
		require.NoError(t, err)
		if len(st.Subscribers) >= len(procs) {
			return
		}
		if time.Now().After(deadline) {
			// Say what each child was doing: one that exited says why,
			// one still running may be stuck before "subscribed".
			var report strings.Builder
			for i, p := range procs {
				state := "running"
				select {
				case <-p.Done():
					state = "exited"
				default:
				}
				fmt.Fprintf(&report, "\nchild %d (pid %d, %s):\n%s", i, p.Pid(), state, p.Output())
			}
			t.Fatalf("%d of %d subscribers joined%s", len(st.Subscribers), len(procs), report.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// fanoutCount is the message count of the cross-process tests: 200k
// (fast enough under -race too: the children's hot loops touch only shared
// memory, which the race detector does not instrument), 2M with
// SHMKIT_SOAK=1.
func fanoutCount() uint64 {
	if soak() {
		return 2_000_000
	}
	return 200_000
}

// TestProcFanout: 4 subscriber processes, each receives every message of a
// self-checking item, in order, whole.
func TestProcFanout(t *testing.T) {
	n := fanoutCount()
	spec := posixSpec(t)
	b, err := Create[msg](spec, 1024)
	require.NoError(t, err)
	defer b.Close()
	var procs []*testproc.Proc
	for _, mode := range []string{"next", "batch", "peek", "next"} {
		procs = append(procs, subChild.Start(t, spec, mode, "0"))
	}
	waitSubscribers(t, b, procs...)
	start := time.Now()
	ctx := context.Background()
	for i := range n {
		require.NoError(t, b.Publish(ctx, makeMsg(i)))
	}
	require.NoError(t, b.CloseWrites())
	for i, p := range procs {
		require.NoError(t, p.Wait(2*time.Minute), "child %d:\n%s", i, p.Output())
		got, missed, _ := counts(t, p.Output())
		require.Equal(t, n, got, "child %d", i)
		require.Zero(t, missed, "child %d", i)
	}
	t.Logf("%d messages to 4 subscriber processes in %v", n, time.Since(start))
}

// args: spec progressSpec name
// A durable subscriber that records its progress in progressSpec (word 0:
// next sequence expected, word 1: lags, word 2: messages lost in flight at
// restarts) after every message, so a SIGKILLed incarnation's successor
// can check it resumes exactly after what was consumed: at most the one
// in-flight message lost, none delivered twice.
var durableChild = testproc.Register("bus-durable", func(a []string) error {
	spec, progSpec, name := a[0], a[1], a[2]
	ps, err := segment.Open(progSpec)
	if err != nil {
		return err
	}
	defer ps.Close()
	pw := ps.Bytes()
	le := binary.LittleEndian
	b, err := Open[msg](spec)
	if err != nil {
		return err
	}
	defer b.Close()
	s, err := b.Subscribe(Durable(name))
	if err != nil {
		return err
	}
	fmt.Println("subscribed")
	ctx := context.Background()
	r := receiver{next: le.Uint64(pw[0:])}
	first := true
	for {
		v, err := s.Next(ctx)
		if err != nil {
			if r.lagged(err) {
				le.PutUint64(pw[8:], le.Uint64(pw[8:])+1)
				le.PutUint64(pw[0:], r.next)
				continue
			}
			return r.end(err)
		}
		if first && v.Seq == r.next+1 {
			// The predecessor was killed between Next and recording it.
			le.PutUint64(pw[16:], le.Uint64(pw[16:])+1)
			r.next++
		}
		first = false
		if err := r.take(&v); err != nil {
			return err
		}
		le.PutUint64(pw[0:], r.next)
	}
})

// TestProcKillDurableAndForGood: a Block bus with two steady subscribers,
// a durable one that is SIGKILLed and restarted, and one killed for good.
// The publisher proceeds past the dead ones; the steady ones get
// everything; the durable one resumes exactly after what it consumed
// (at most the in-flight message lost, none twice; what it missed while
// dead is reported with ErrLagged and counted in its record).
func TestProcKillDurableAndForGood(t *testing.T) {
	n := fanoutCount()
	spec := posixSpec(t)
	progSpec := "posix:/" + testproc.UniqueName("busprog")
	t.Cleanup(func() { _ = segment.Remove(progSpec) })
	ps, err := segment.Create(progSpec, 4096)
	require.NoError(t, err)
	defer ps.Close()

	b, err := Create[msg](spec, 256)
	require.NoError(t, err)
	defer b.Close()
	steady := []*testproc.Proc{subChild.Start(t, spec, "next", "0"), subChild.Start(t, spec, "batch", "0")}
	doomed := subChild.Start(t, spec, "next", "1000")
	dur := durableChild.Start(t, spec, progSpec, "audit")
	waitSubscribers(t, b, steady[0], steady[1], doomed, dur)

	ctx := context.Background()
	var published atomic.Uint64
	pubDone := make(chan error, 1)
	go func() {
		for i := range n {
			if err := b.Publish(ctx, makeMsg(i)); err != nil {
				pubDone <- err
				return
			}
			published.Store(i + 1)
		}
		pubDone <- b.CloseWrites()
	}()
	waitFor := func(k uint64) {
		for published.Load() < k {
			select {
			case err := <-pubDone:
				pubDone <- err
				return
			default:
				time.Sleep(100 * time.Microsecond)
			}
		}
	}
	waitFor(n / 5)
	doomed.Kill()
	waitFor(n / 3)
	dur.Kill()
	waitFor(n / 2)
	dur2 := durableChild.Start(t, spec, progSpec, "audit")

	select {
	case err := <-pubDone:
		require.NoError(t, err)
	case <-time.After(2 * time.Minute):
		t.Fatalf("publisher stuck at %d of %d", published.Load(), n)
	}
	for i, p := range steady {
		require.NoError(t, p.Wait(time.Minute), "steady %d:\n%s", i, p.Output())
		got, missed, _ := counts(t, p.Output())
		require.Equal(t, n, got)
		require.Zero(t, missed)
	}
	require.NoError(t, dur2.Wait(time.Minute), dur2.Output())
	pw := ps.Bytes()
	le := binary.LittleEndian
	require.Equal(t, n, le.Uint64(pw[0:]), "the durable subscriber accounted for every message")
	require.LessOrEqual(t, le.Uint64(pw[16:]), uint64(1), "at most the in-flight message lost at the kill")
	st, err := b.Stats()
	require.NoError(t, err)
	var audit *SubscriberStats
	for i := range st.Subscribers {
		if st.Subscribers[i].Name == "audit" {
			audit = &st.Subscribers[i]
		}
	}
	require.NotNil(t, audit)
	require.Equal(t, n, audit.Cursor)
	require.Equal(t, le.Uint64(pw[8:]), audit.Lapped)
	t.Logf("durable: lapped %d times, missed %d while dead, %d lost in flight", audit.Lapped, audit.Missed, le.Uint64(pw[16:]))
}

// TestProcOverwriteSlow: an Overwrite bus, one fast and one slow subscriber
// process. Each message is whole, none is delivered twice, and received +
// missed = published for each.
func TestProcOverwriteSlow(t *testing.T) {
	n := fanoutCount()
	spec := posixSpec(t)
	b, err := Create[msg](spec, 64, WithOverflow(Overwrite))
	require.NoError(t, err)
	defer b.Close()
	fast := subChild.Start(t, spec, "next", "0")
	slow := subChild.Start(t, spec, "next", "200")
	batch := subChild.Start(t, spec, "batch", "500")
	waitSubscribers(t, b, fast, slow, batch)
	ctx := context.Background()
	for i := range n {
		require.NoError(t, b.Publish(ctx, makeMsg(i)))
		if i%1024 == 0 {
			time.Sleep(50 * time.Microsecond) // let the fast one keep up now and then
		}
	}
	require.NoError(t, b.CloseWrites())
	var slowMissed uint64
	for i, p := range []*testproc.Proc{fast, slow, batch} {
		require.NoError(t, p.Wait(time.Minute), "child %d:\n%s", i, p.Output())
		got, missed, lags := counts(t, p.Output())
		require.Equal(t, n, got+missed, "child %d: received %d + missed %d", i, got, missed)
		t.Logf("child %d: received %d, missed %d in %d lags", i, got, missed, lags)
		if i == 1 {
			slowMissed = missed
		}
	}
	require.NotZero(t, slowMissed, "the slow subscriber was lapped")
	st, err := b.Stats()
	require.NoError(t, err)
	require.Equal(t, n, st.Published)
}
