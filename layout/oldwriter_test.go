package layout

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/segment"
	"github.com/stretchr/testify/require"
)

// tickNow is what today's code may share; tickOld is the same shape with the
// bool an older writer (before bool was refused) would have stored.
type tickNow struct {
	Seq  uint64
	Live uint8
}

type tickOld struct {
	Seq  uint64
	Live bool
}

// forgeTypeDesc rewrites segment b's type description 0 to layout lay, with
// the fingerprint and header checksum an older writer would have computed
// for it: the segment stays well-formed, only its type changes.
func forgeTypeDesc(t *testing.T, b []byte, lay string) {
	t.Helper()
	var h Header
	copy(headerBytes(&h), b[:HeaderSize])
	old := h.TypeDescOff + h.TypeDescLen
	ti := TypeInfo{Name: "main.Tick", Layout: lay, Fingerprint: xxhash.Sum64String(lay)}
	desc := encodeTypeDescs([]TypeInfo{ti})
	require.LessOrEqual(t, h.TypeDescOff+uint64(len(desc)), h.Regions[0].Off, "forged description must not overlap region 0")
	clear(b[h.TypeDescOff:old])
	copy(b[h.TypeDescOff:], desc)
	h.TypeDescLen = uint64(len(desc))
	h.Types[0].Fingerprint = ti.Fingerprint
	h.Checksum = h.sum(desc)
	copy(b[:offState], headerBytes(&h)[:offState])
}

// A segment written by an older shmkit that accepted bool describes its
// type with "bool" in the layout string. No type this build accepts has
// that layout, so a typed Open refuses it: ErrTypeMismatch when opened as
// the uint8 version (the fingerprints differ, and the message shows both
// layouts), ErrUnsupportedType when opened as the bool version. Tools that
// open without a type (shmctl stat, rm) still can, to show and remove it.
func TestOpenRefusesOldBoolSegment(t *testing.T) {
	spec := "posix:/" + testproc.UniqueName("layout-oldbool")
	t.Cleanup(func() { _ = segment.Remove(spec) })
	v, err := CreateValue[tickNow](spec)
	require.NoError(t, err)
	now := v.Segment().Types()[0].Layout
	require.Contains(t, now, "Live uint8@8")
	oldLayout := strings.Replace(now, "Live uint8@8", "Live bool@8", 1)
	forgeTypeDesc(t, v.Segment().Raw().Bytes(), oldLayout)
	require.NoError(t, v.Close())

	// The forged segment is well-formed: an untyped open accepts it and
	// reads back the bool layout, so what follows is the type check
	// refusing it, not the checksum.
	s, err := Open(spec, Expect{Kind: KindValue})
	require.NoError(t, err)
	require.Equal(t, oldLayout, s.Types()[0].Layout)
	require.NoError(t, s.Close())

	_, err = OpenValue[tickNow](spec)
	require.ErrorIs(t, err, ErrTypeMismatch)
	require.Contains(t, err.Error(), "Live bool@8")
	require.Contains(t, err.Error(), "Live uint8@8")

	_, err = OpenValue[tickOld](spec)
	require.ErrorIs(t, err, ErrUnsupportedType)
	require.Contains(t, err.Error(), "tickOld.Live is a bool")
	var te *TypeError
	require.True(t, errors.As(err, &te))

	// The lower-level Open with the bool type fails the same way, before
	// comparing anything.
	_, err = Open(spec, Expect{Kind: KindValue, Types: []reflect.Type{reflect.TypeFor[tickOld]()}})
	require.ErrorIs(t, err, ErrUnsupportedType)
}
