package shmmap_test

import (
	"errors"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/faultguard/faulttest"

	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	"github.com/shmkit/shmkit/shmmap"
	"github.com/stretchr/testify/require"
)

// requireTruncated checks err is the fault guard's, for this package.
func requireTruncated(t *testing.T, err error, spec string) {
	t.Helper()
	faulttest.RequireTruncated(t, err, "shmmap", spec)
}

// requireOnlyClose checks that every call of m but Close returns first
// (Get: zero, false; Len: 0; All: nothing), and that Close works.
func requireOnlyClose(t *testing.T, m *shmmap.Map[uint64, uint64], first error) {
	t.Helper()
	require.Equal(t, first, m.Put(1, 1))
	v, ok, err := m.Load(1)
	require.Equal(t, first, err)
	require.False(t, ok)
	require.Zero(t, v)
	v, ok = m.Get(1)
	require.False(t, ok)
	require.Zero(t, v)
	require.False(t, m.Delete(1))
	_, _, err = m.LoadAndDelete(1)
	require.Equal(t, first, err)
	require.Equal(t, first, m.Update(1, func(v uint64, ok bool) (uint64, bool) { return v, ok }))
	_, err = m.CompareAndSwap(1, 1, 2)
	require.Equal(t, first, err)
	_, err = m.CompareAndDelete(1, 1)
	require.Equal(t, first, err)
	_, _, err = m.LoadOrStore(1, 1)
	require.Equal(t, first, err)
	require.Equal(t, first, m.Clear())
	_, err = m.Stats()
	require.Equal(t, first, err)
	require.Equal(t, first, m.Check())
	require.Equal(t, 0, m.Len())
	for range m.All() {
		t.Fatal("All yielded after a fault")
	}
	require.NoError(t, m.Close())
	require.NoError(t, m.Close())
}

// TestTruncatedMap: a child process truncates the segment to 0 while this
// process loops Put/Get/Load/Delete on a WithFaultGuard handle. The loop
// ends with the fault error, not SIGBUS; later calls return the same error;
// Close works.
func TestTruncatedMap(t *testing.T) {
	for name, sp := range faulttest.Specs(t, segment.Remove) {
		t.Run(name, func(t *testing.T) {
			spec, path := sp[0], sp[1]
			m, err := shmmap.Create[uint64, uint64](spec, 4096, shmmap.WithFaultGuard())
			require.NoError(t, err)
			p := faulttest.TruncateDuring(t, path)
			var loopErr error
			n := 0
			deadline := time.Now().Add(30 * time.Second)
			for i := uint64(0); time.Now().Before(deadline); i++ {
				k := i % 3000
				if loopErr = m.Put(k, i); loopErr != nil {
					break
				}
				if _, ok := m.Get(k); !ok {
					// Get reports a fault as absent; Load says why.
					_, _, loopErr = m.Load(k)
					require.Error(t, loopErr, "key %d lost without a fault", k)
					break
				}
				if i%5 == 0 {
					if _, _, loopErr = m.LoadAndDelete(k); loopErr != nil {
						break
					}
				}
				n++
			}
			require.NoError(t, p.Wait(time.Minute), p.Output())
			t.Logf("%d rounds before the truncation was seen: %v", n, loopErr)
			requireTruncated(t, loopErr, spec)
			requireOnlyClose(t, m, loopErr)
		})
	}
}

// TestTruncatedMapDefault: without WithFaultGuard the per-key calls are
// not guarded, but Stats, Check, Len, All and Inspect are: each returns
// (or records) the fault error on a handle of its own; Close works.
func TestTruncatedMapDefault(t *testing.T) {
	for name, sp := range faulttest.Specs(t, segment.Remove) {
		t.Run(name, func(t *testing.T) {
			spec, path := sp[0], sp[1]
			m, err := shmmap.Create[uint64, uint64](spec, 4096)
			require.NoError(t, err)
			for i := range uint64(1000) {
				require.NoError(t, m.Put(i, i))
			}
			open := func() *shmmap.Map[uint64, uint64] {
				h, err := shmmap.Open[uint64, uint64](spec)
				require.NoError(t, err)
				return h
			}
			check, length, all, insp := open(), open(), open(), open()
			faulttest.Truncate(t, path)

			_, err = m.Stats()
			requireTruncated(t, err, spec)
			requireOnlyClose(t, m, err)

			err = check.Check()
			requireTruncated(t, err, spec)
			requireOnlyClose(t, check, err)

			require.Equal(t, 0, length.Len())
			_, err = length.Stats() // Len recorded the fault
			requireTruncated(t, err, spec)
			requireOnlyClose(t, length, err)

			for range all.All() {
				t.Fatal("All yielded from a truncated segment")
			}
			err = all.Check() // All recorded the fault
			requireTruncated(t, err, spec)
			requireOnlyClose(t, all, err)

			_, err = shmmap.Inspect(insp.Segment())
			requireTruncated(t, err, spec)
			require.NoError(t, insp.Close())
		})
	}
}

// TestTruncatedLockWait: a default handle's Load and Put block on a shard
// lock held by a writer stopped mid-write; the segment is truncated under
// them. Both return the fault error (the lock wait and the locked read
// path are always guarded), not SIGBUS.
func TestTruncatedLockWait(t *testing.T) {
	name := testproc.UniqueName("mtrunclock")
	spec, path := "posix:/"+name, "/dev/shm/"+name
	t.Cleanup(func() { _ = segment.Remove(spec) })
	m, err := shmmap.Create[uint64, lockedVal](spec, 4, shmmap.WithShards(1))
	require.NoError(t, err)
	require.NoError(t, m.Put(1, fillLocked(0)))
	w := lockedWriter.Start(t, spec)
	require.True(t, w.WaitOutput("go", time.Minute), w.Output())
	defer w.Kill()
	stopMidWrite(t, m, w)

	// Past the unguarded fast paths before the truncation: the Put is
	// blocked once the lock word says a waiter is (nobody else waits), the
	// Load once it counted its locked read (the guarded locked path).
	loadErr, putErr := make(chan error, 1), make(chan error, 1)
	go func() { putErr <- m.Put(2, fillLocked(2)) }()
	require.Eventually(t, func() bool {
		st, err := m.Stats()
		require.NoError(t, err)
		return st.Shard[0].Lock.Waiters
	}, 10*time.Second, time.Millisecond)
	locked0 := m.LockedReads()
	go func() {
		_, _, err := m.Load(1)
		loadErr <- err
	}()
	require.Eventually(t, func() bool { return m.LockedReads() > locked0 }, 10*time.Second, time.Millisecond)
	select {
	case err := <-loadErr:
		t.Fatalf("Load returned while the writer was stopped mid-write: %v", err)
	case err := <-putErr:
		t.Fatalf("Put returned while the writer was stopped mid-write: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	faulttest.Truncate(t, path)
	for _, c := range []chan error{loadErr, putErr} {
		select {
		case err = <-c:
		case <-time.After(20 * time.Second):
			t.Fatal("a call blocked on the shard lock did not return after the truncation")
		}
		requireTruncated(t, err, spec)
		require.True(t, errors.Is(err, layout.ErrCorrupt))
		t.Log(err)
	}
	_, err = m.Stats()
	requireTruncated(t, err, spec)
	require.NoError(t, m.Close())
}
