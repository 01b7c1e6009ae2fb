package shmtest_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmkit/shmkit/shmtest"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { shmtest.Main(m) }

// looper records "pushed i" then passes the crash point "shmtest.loop",
// args[1] times (forever if absent), then exits 0.
var looper = shmtest.Register("shmtest-looper", func(args []string) error {
	l, err := shmtest.OpenLedger(args[0])
	if err != nil {
		return err
	}
	n := uint64(1<<63 - 1)
	if len(args) > 1 {
		if n, err = strconv.ParseUint(args[1], 10, 64); err != nil {
			return err
		}
	}
	for i := range n {
		if err := l.Pushed(7, i); err != nil {
			return err
		}
		shmtest.CrashPoint("shmtest.loop")
	}
	return nil
})

func TestKillAtCrashPoint(t *testing.T) {
	l := shmtest.NewLedger(t)
	p := looper.Start(t, shmtest.Args(l.Path()), shmtest.KillAt("shmtest.loop", 5))
	require.NoError(t, waitDone(p, 30*time.Second))
	require.True(t, p.Killed(), "child was not SIGKILLed: %s", p.Output())
	entries, err := l.Entries()
	require.NoError(t, err)
	// Killed at the 5th pass: exactly the 5 records written before it.
	require.Len(t, entries, 5)
	for i, e := range entries {
		require.Equal(t, shmtest.Pushed, e.Op)
		require.Equal(t, uint64(i), e.Seq)
		require.Equal(t, p.Pid(), e.PID)
	}

	// A restart carries the arguments over but not the crash point.
	q := p.Restart(t, shmtest.Args(l.Path(), "3"))
	require.NoError(t, q.Wait(30*time.Second), q.Output())
	require.True(t, q.ExitedOK())
	require.False(t, q.Killed())
	entries, err = l.Entries()
	require.NoError(t, err)
	require.Len(t, entries, 8)
	require.NotEqual(t, entries[0].Session, entries[7].Session)
}

func TestKillWithinAndRestart(t *testing.T) {
	l := shmtest.NewLedger(t)
	p := looper.Start(t, shmtest.Args(l.Path()), shmtest.KillWithin(200*time.Millisecond))
	require.NoError(t, waitDone(p, 30*time.Second))
	require.True(t, p.Killed())
	require.Less(t, p.KilledAfter(), 200*time.Millisecond)
	n1, err := l.Entries()
	require.NoError(t, err)

	// Long enough for the re-executed binary to reach the child function
	// even under -race on a loaded machine.
	q := p.Restart(t, shmtest.KillAfter(2*time.Second))
	require.NoError(t, waitDone(q, 30*time.Second))
	require.True(t, q.Killed())
	require.Equal(t, 2*time.Second, q.KilledAfter())
	n2, err := l.Entries()
	require.NoError(t, err)
	require.Greater(t, len(n2), len(n1), "the restarted child wrote nothing")
	t.Logf("first child wrote %d records before its kill at %v; second %d", len(n1), p.KilledAfter(), len(n2)-len(n1))
}

// appender writes args[1] records for producer args[2] as fast as it can.
var appender = shmtest.Register("shmtest-appender", func(args []string) error {
	l, err := shmtest.OpenLedger(args[0])
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(args[1])
	prod, _ := strconv.Atoi(args[2])
	for i := range n {
		if err := l.Pushed(uint32(prod), uint64(i)); err != nil {
			return err
		}
		if err := l.Popped(uint32(prod), uint64(i)); err != nil {
			return err
		}
	}
	return nil
})

// TestLedgerManyWritersAndKills: records from concurrent processes never
// interleave inside a record, and a process SIGKILLed mid-stream leaves no
// damaged record.
func TestLedgerManyWritersAndKills(t *testing.T) {
	l := shmtest.NewLedger(t)
	const n = 2000
	var procs []*shmtest.Proc
	for prod := range 4 {
		procs = append(procs, appender.Start(t, shmtest.Args(l.Path(), strconv.Itoa(n), strconv.Itoa(prod))))
	}
	victim := appender.Start(t, shmtest.Args(l.Path(), "100000000", "99"), shmtest.KillWithin(100*time.Millisecond))
	for _, p := range procs {
		require.NoError(t, p.Wait(60*time.Second), p.Output())
	}
	require.NoError(t, waitDone(victim, 60*time.Second))
	require.True(t, victim.Killed())

	entries, err := l.Entries()
	require.NoError(t, err)
	var mine []shmtest.Entry
	for _, e := range entries {
		if e.Producer != 99 {
			mine = append(mine, e)
		}
	}
	require.Len(t, mine, 4*n*2)
	require.NoError(t, shmtest.RunChecks(mine, shmtest.ExactlyOnce(), shmtest.InOrderPerProducer()))
	// The victim's own records are whole; at most its last push lacks a pop.
	require.NoError(t, l.Check(shmtest.AtMostLost(1), shmtest.InOrderPerProducer()))
}

func TestChecks(t *testing.T) {
	e := func(op shmtest.Op, prod uint32, seq uint64, session uint64) shmtest.Entry {
		return shmtest.Entry{Op: op, Item: shmtest.Item{Producer: prod, Seq: seq}, Session: session}
	}
	ok := []shmtest.Entry{
		e(shmtest.Pushing, 1, 0, 1), e(shmtest.Pushed, 1, 0, 1),
		e(shmtest.Pushing, 1, 1, 1), e(shmtest.Pushed, 1, 1, 1),
		e(shmtest.Pushing, 1, 2, 1), // producer died mid-push
		e(shmtest.Popped, 1, 0, 2), e(shmtest.Popped, 1, 1, 2),
	}
	require.NoError(t, shmtest.RunChecks(ok, shmtest.ExactlyOnce(), shmtest.InOrderPerProducer()))
	// The in-flight item may be delivered once.
	require.NoError(t, shmtest.RunChecks(append(ok, e(shmtest.Popped, 1, 2, 2)), shmtest.ExactlyOnce()))

	cases := []struct {
		name    string
		entries []shmtest.Entry
		check   shmtest.Check
		want    string
	}{
		{"lost", ok[:len(ok)-1], shmtest.ExactlyOnce(), "1 pushed items never popped (at most 0 allowed): 1/1"},
		{"lost allowed", ok[:len(ok)-1], shmtest.AtMostLost(1), ""},
		{"phantom", append(ok, e(shmtest.Popped, 1, 9, 2)), shmtest.ExactlyOnce(), "1 items popped but never pushed: 1/9"},
		{"duplicate", append(ok, e(shmtest.Popped, 1, 0, 3)), shmtest.ExactlyOnce(), "1 items popped more than once (at most 0 allowed): 1/0"},
		{"duplicate allowed", append(ok, e(shmtest.Popped, 1, 0, 3)), shmtest.Delivered(0, 1), ""},
		{"pushed twice", append(ok, e(shmtest.Pushed, 1, 0, 1)), shmtest.ExactlyOnce(), "pushed twice"},
		{"in-flight twice", append(ok, e(shmtest.Popped, 1, 2, 2), e(shmtest.Popped, 1, 2, 3)), shmtest.ExactlyOnce(), "popped more than once"},
		{"reordered", append(ok, e(shmtest.Pushed, 1, 3, 1), e(shmtest.Popped, 1, 3, 2), e(shmtest.Popped, 1, 2, 2)), shmtest.InOrderPerProducer(), "popped 1/2 after 1/3"},
		{"redelivered to a new session", append(ok, e(shmtest.Popped, 1, 1, 3)), shmtest.InOrderPerProducer(), ""},
	}
	for _, c := range cases {
		err := shmtest.RunChecks(c.entries, c.check)
		if c.want == "" {
			require.NoError(t, err, c.name)
			continue
		}
		require.Error(t, err, c.name)
		require.True(t, strings.Contains(err.Error(), c.want), "%s: %v", c.name, err)
	}
}

func TestLedgerDamage(t *testing.T) {
	l := shmtest.NewLedger(t)
	require.NoError(t, l.Pushed(1, 1))
	require.NoError(t, l.Close())
	w, err := shmtest.OpenLedger(l.Path())
	require.NoError(t, err)
	defer w.Close()
	// A stray partial record must be reported, not silently dropped.
	f := w.Path()
	require.NoError(t, appendBytes(f, []byte{1, 2, 3}))
	_, err = shmtest.ReadLedger(f)
	require.ErrorContains(t, err, "not a whole number")
}

func waitDone(p *shmtest.Proc, d time.Duration) error {
	select {
	case <-p.Done():
		return nil
	case <-time.After(d):
		p.Kill()
		return errTimeout(p.String())
	}
}

type errTimeout string

func (e errTimeout) Error() string { return string(e) + " did not exit in time" }

func appendBytes(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
