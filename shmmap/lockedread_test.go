package shmmap_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/shmmap"
	"github.com/stretchr/testify/require"
)

// ---------------------------------------------------------------------------
// The locked read path, forced and counted.
//
// A reader that finds its shard's sequence count odd for readAttempts
// attempts falls back to the shard lock (Stats.LockedReads counts these
// reads). The tests below stop a writer (SIGSTOP) exactly while it is
// inside a write, with the count odd, so that every reader of that shard
// must take the lock path, and check what it returns: nothing while the
// writer is stopped (ErrLockTimeout with a short lock timeout, never a torn
// or half-written value), the written value once it continues, and the
// writer's logged value (repaired by the reader) once it is SIGKILLed.

// lockedVal is large so that a writer spends much of its time inside the
// write (with the count odd): stopping it at a random moment lands there
// often.
type lockedVal [256]uint64

func fillLocked(c uint64) lockedVal {
	var v lockedVal
	for i := range v {
		v[i] = c
	}
	return v
}

// checkLocked returns the counter of a whole value, or an error for a
// torn one.
func checkLocked(v lockedVal) (uint64, error) {
	for i := range v {
		if v[i] != v[0] {
			return 0, fmt.Errorf("torn value: word %d is %d, word 0 is %d", i, v[i], v[0])
		}
	}
	return v[0], nil
}

// lockedWriter updates key 1 with ever larger counters, forever.
var lockedWriter = testproc.Register("locked-writer", func(args []string) error {
	m, err := shmmap.Open[uint64, lockedVal](args[0])
	if err != nil {
		return err
	}
	defer m.Close()
	fmt.Println("go")
	for c := uint64(1); ; c++ {
		if err := m.Put(1, fillLocked(c)); err != nil {
			return err
		}
	}
})

// lockedReader reads key 1 once and prints the counter, its locked reads
// and its repairs.
var lockedReader = testproc.Register("locked-reader", func(args []string) error {
	m, err := shmmap.Open[uint64, lockedVal](args[0])
	if err != nil {
		return err
	}
	defer m.Close()
	v, ok, err := m.Load(1)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("key 1 missing")
	}
	c, err := checkLocked(v)
	if err != nil {
		return err
	}
	fmt.Println(c, m.LockedReads(), m.RepairCount())
	return nil
})

// processState returns the state letter of /proc/PID/stat (R, S, T, ...).
func processState(t *testing.T, pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	require.NoError(t, err)
	i := bytes.LastIndexByte(b, ')')
	require.Greater(t, i, 0)
	require.Greater(t, len(b), i+2)
	return b[i+2]
}

// stopMidWrite SIGSTOPs the writer until it is caught inside a write
// (shard 0's count odd) and returns the counter it is writing (from the
// shard's redo record). It leaves the writer stopped.
func stopMidWrite(t *testing.T, m *shmmap.Map[uint64, lockedVal], p *testproc.Proc) uint64 {
	t.Helper()
	for try := 0; try < 5000; try++ {
		p.Signal(syscall.SIGSTOP)
		for processState(t, p.Pid()) != 'T' {
			time.Sleep(50 * time.Microsecond)
		}
		st, err := m.Stats()
		require.NoError(t, err)
		if st.Shard[0].Writing {
			op, v := m.PendingRedo(0)
			require.Equal(t, "update", op)
			c, err := checkLocked(v)
			require.NoError(t, err, "the redo entry")
			t.Logf("writer stopped mid-write of %d after %d tries", c, try+1)
			return c
		}
		p.Signal(syscall.SIGCONT)
		time.Sleep(time.Duration(try%7) * 100 * time.Microsecond)
	}
	t.Fatal("never caught the writer inside a write")
	return 0
}

func TestLockedReadsForced(t *testing.T) {
	m, spec := create[uint64, lockedVal](t, 4, shmmap.WithShards(1))
	require.NoError(t, m.Put(1, fillLocked(0)))
	short, err := shmmap.Open[uint64, lockedVal](spec, shmmap.WithLockTimeout(200*time.Millisecond))
	require.NoError(t, err)
	defer short.Close()

	w := lockedWriter.Start(t, spec)
	require.True(t, w.WaitOutput("go", time.Minute), w.Output())
	defer w.Signal(syscall.SIGCONT) // never leave a stopped child behind

	// 1. Writer stopped mid-write: a reader with a short lock timeout
	// falls back to the lock and gives up with ErrLockTimeout (no value,
	// never a half-written one).
	c := stopMidWrite(t, m, w)
	locked0 := short.LockedReads()
	start := time.Now()
	_, _, err = short.Load(1)
	require.ErrorIs(t, err, shmmap.ErrLockTimeout)
	require.Equal(t, locked0+1, short.LockedReads(), "the read did not fall back to the lock")
	t.Logf("stopped writer: Load gave up after %v: %v", time.Since(start), err)
	_, ok := short.Get(1) // Get reports the failure as absent
	require.False(t, ok)
	require.Equal(t, locked0+2, short.LockedReads())
	w.Signal(syscall.SIGCONT)
	time.Sleep(5 * time.Millisecond)

	// 2. Writer stopped mid-write, then continued: a reader blocked in the
	// lock path returns the value the writer finished, or a later one.
	c = stopMidWrite(t, m, w)
	locked0 = m.LockedReads()
	type got struct {
		v   lockedVal
		ok  bool
		err error
	}
	res := make(chan got, 1)
	go func() {
		v, ok, err := m.Load(1)
		res <- got{v, ok, err}
	}()
	select {
	case r := <-res:
		t.Fatalf("a read returned while the writer was stopped mid-write: %v %v", r.ok, r.err)
	case <-time.After(300 * time.Millisecond):
	}
	w.Signal(syscall.SIGCONT)
	r := <-res
	require.NoError(t, r.err)
	require.True(t, r.ok)
	c2, err := checkLocked(r.v)
	require.NoError(t, err)
	require.GreaterOrEqual(t, c2, c, "the locked read returned a value older than the one in flight")
	require.Equal(t, locked0+1, m.LockedReads(), "the read did not fall back to the lock")
	t.Logf("continued writer: locked read returned %d (in flight: %d)", c2, c)

	// 3. Writer stopped mid-write, then SIGKILLed: readers in another
	// process and in this one fall back to the lock, the first repairs
	// (completing the logged update), and both return its value.
	c = stopMidWrite(t, m, w)
	w.Kill()
	st, err := m.Stats()
	require.NoError(t, err)
	require.True(t, st.Shard[0].Writing)
	out := lockedReader.Run(t, spec)
	var rc, rlocked, rrepairs uint64
	_, err = fmt.Sscan(out, &rc, &rlocked, &rrepairs)
	require.NoError(t, err, out)
	require.Equal(t, c, rc, "the dead writer's logged update was not completed")
	require.Equal(t, uint64(1), rlocked, "the reader did not fall back to the lock")
	require.Equal(t, uint64(1), rrepairs, "the reader did not repair the shard")
	v, ok := m.Get(1)
	require.True(t, ok)
	require.Equal(t, fillLocked(c), v)
	require.NoError(t, m.Check())
	stm, err := m.Stats()
	require.NoError(t, err)
	sts, err := short.Stats()
	require.NoError(t, err)
	t.Logf("locked reads: %d (short-timeout handle), %d (this handle), %d (reader process); repairs by the reader process %d",
		sts.LockedReads, stm.LockedReads, rlocked, rrepairs)
}
