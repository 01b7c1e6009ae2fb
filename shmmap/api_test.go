package shmmap_test

import (
	"errors"
	"io/fs"
	"testing"
	"time"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	"github.com/shmkit/shmkit/shmmap"
	"github.com/shmkit/shmkit/shmring"
	shmsync "github.com/shmkit/shmkit/sync"
	"github.com/stretchr/testify/require"
)

// The one dialect every structure package speaks: idempotent Close, Remove,
// Stats/Inspect, the sentinel set, OpError-shaped errors, the common options.
func TestDialect(t *testing.T) {
	spec := posixSpec(t)
	m, err := shmmap.Create[uint64, uint64](spec, 10, shmmap.WithShards(1),
		shmmap.WithMode(0o600), shmmap.WithWaitPolicy(shmsync.WaitPolicy{}))
	require.NoError(t, err)
	for i := range uint64(7) {
		require.NoError(t, m.Put(i, i))
	}

	// Errors are OpErrors: package, operation, segment, sentinel.
	for i := uint64(100); ; i++ {
		if err = m.Put(i, i); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, shmmap.ErrFull)
	var oe *layout.OpError
	require.True(t, errors.As(err, &oe), "%T %v", err, err)
	require.Equal(t, "shmmap", oe.Pkg)
	require.Equal(t, "put", oe.Op)
	require.Equal(t, spec, oe.Spec)
	require.Regexp(t, `^shmmap: put posix:/\S+: shmkit: full`, err.Error())
	_, err = m.CompareAndSwap(1000, 0, 1)
	require.NoError(t, err) // absent: no swap, no error
	_, _, err = m.LoadOrStore(999, 1)
	require.ErrorIs(t, err, shmmap.ErrFull)
	require.True(t, errors.As(err, &oe))
	require.Equal(t, "load-or-store", oe.Op)

	// Stats and Inspect agree.
	st, err := m.Stats()
	require.NoError(t, err)
	s, err := layout.Open(spec, layout.Expect{Kind: layout.KindMap})
	require.NoError(t, err)
	ins, err := shmmap.Inspect(s)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.Equal(t, st.Len, ins.Len)

	// Close is idempotent; other calls after it say ErrClosed.
	require.NoError(t, m.Close())
	require.NoError(t, m.Close())
	_, err = m.Stats()
	require.ErrorIs(t, err, shmmap.ErrClosed)
	require.ErrorIs(t, err, fs.ErrClosed)
	require.ErrorIs(t, m.Clear(), shmmap.ErrClosed)
	_, _, err = m.LoadAndDelete(1)
	require.ErrorIs(t, err, shmmap.ErrClosed)

	// Remove removes everything the map made.
	require.NoError(t, shmmap.Remove(spec))
	_, err = shmmap.Open[uint64, uint64](spec)
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.True(t, errors.As(err, &oe))
	require.Equal(t, "open", oe.Op)
	require.ErrorIs(t, shmmap.Remove(spec), fs.ErrNotExist)
}

func TestOptionsVocabulary(t *testing.T) {
	spec := posixSpec(t)
	// Another structure's option is refused, naming both.
	_, err := shmmap.Create[uint64, uint64](spec, 10, shmring.WithWaitPolicy(shmsync.WaitPolicy{}))
	require.NoError(t, err, "common options are shared")
	require.NoError(t, shmmap.Remove(spec))
	_, err = shmring.Create[uint64](spec, 8, shmmap.WithSeed(1))
	require.Error(t, err)
	require.Contains(t, err.Error(), "shmmap.WithSeed")
	_ = segment.Remove(spec)
	// A negative lock timeout or wait policy is refused.
	_, err = shmmap.Create[uint64, uint64](spec, 10, shmmap.WithLockTimeout(-time.Second))
	require.Error(t, err)
	_, err = shmmap.Create[uint64, uint64](spec, 10, shmmap.WithWaitPolicy(shmsync.WaitPolicy{Spin: -1}))
	require.Error(t, err)
	_, err = segment.Open(spec)
	require.ErrorIs(t, err, fs.ErrNotExist, "a refused Create makes nothing")
}
