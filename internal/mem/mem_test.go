package mem

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

type pair struct {
	A uint32
	B uint64
}

func TestPtrAndSliceBounds(t *testing.T) {
	var backing [8]uint64 // 8-aligned backing store
	raw := Bytes(&backing)
	require.Len(t, raw, 64)
	p, err := Ptr[pair](raw)
	require.NoError(t, err)
	p.B = 7
	require.Equal(t, uint64(7), backing[1])

	_, err = Ptr[pair](raw[:8])
	require.True(t, errors.Is(err, ErrView))
	_, err = Ptr[pair](raw[4:])
	require.True(t, errors.Is(err, ErrView), "misaligned view must be refused")

	s, err := Slice[pair](raw, 4)
	require.NoError(t, err)
	require.Len(t, s, 4)
	_, err = Slice[pair](raw, 5)
	require.True(t, errors.Is(err, ErrView))
	_, err = Slice[pair](raw, -1)
	require.True(t, errors.Is(err, ErrView))
	_, err = Slice[pair](raw, 1<<62)
	require.True(t, errors.Is(err, ErrView), "huge counts must not overflow the bound check")
}
