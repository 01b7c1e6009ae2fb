package shmmap_test

import (
	"testing"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	"github.com/shmkit/shmkit/shmmap"
	"github.com/stretchr/testify/require"
)

// Inspect, which knows neither K nor V, must see the same table the typed
// Stats sees: it derives the slot size and shard stride from the regions.
func TestInspectMatchesStats(t *testing.T) {
	type key struct {
		A uint8
		B uint64
	}
	type value struct{ V [3]uint16 }
	m, spec := create[key, value](t, 5000)
	for i := range 3000 {
		require.NoError(t, m.Put(key{A: uint8(i), B: uint64(i)}, value{V: [3]uint16{uint16(i)}}))
	}
	for i := range 1000 {
		m.Delete(key{A: uint8(i * 3), B: uint64(i * 3)})
	}
	want, err := m.Stats()
	require.NoError(t, err)

	s, err := layout.Open(spec, layout.Expect{Kind: layout.KindMap}, layout.WithSegment(segment.ReadOnly()))
	require.NoError(t, err)
	defer s.Close()
	got, err := shmmap.Inspect(s)
	require.NoError(t, err)
	want.Repairs, want.LockedReads = 0, 0
	require.Equal(t, want, got)
	require.Equal(t, m.Len(), got.Len)
}

func TestInspectRejectsOtherKinds(t *testing.T) {
	spec := posixSpec(t)
	v, err := layout.CreateValue[uint64](spec)
	require.NoError(t, err)
	defer v.Close()
	_, err = shmmap.Inspect(v.Segment())
	require.ErrorIs(t, err, layout.ErrTypeMismatch)
}
