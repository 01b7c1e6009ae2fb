package shmmap

import (
	"encoding/binary"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/require"
)

// TestShortHashMatchesXXHash: the inline 8-byte path computes exactly
// xxhash.Sum64(LE64(seed) || key), the documented hash.
func TestShortHashMatchesXXHash(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for range 10000 {
		seed, k := r.Uint64(), r.Uint64()
		h := newHasher(seed, 8, []span{{0, 8}})
		require.True(t, h.short)
		var buf [16]byte
		binary.LittleEndian.PutUint64(buf[:], seed)
		binary.LittleEndian.PutUint64(buf[8:], k)
		require.Equal(t, xxhash.Sum64(buf[:]), hashKey(&h, &k))
	}
}

// TestHashPaths: every path (short, dense buffer, gathered, streaming)
// hashes LE64(seed) followed by the non-padding bytes.
func TestHashPaths(t *testing.T) {
	type padded struct {
		A uint8
		B uint64
		C uint16
	}
	type big struct {
		P [40]padded
	}
	check := func(typ reflect.Type, p any, raw []byte) {
		spans, err := byteSpans(typ, false)
		require.NoError(t, err)
		h := newHasher(12345, typ.Size(), spans)
		want := make([]byte, 8)
		binary.LittleEndian.PutUint64(want, 12345)
		for _, s := range spans {
			want = append(want, raw[s.off:s.off+s.len]...)
		}
		var got uint64
		switch v := p.(type) {
		case *padded:
			got = hashKey(&h, v)
		case *big:
			got = hashKey(&h, v)
		case *[5]uint32:
			got = hashKey(&h, v)
		}
		require.Equal(t, xxhash.Sum64(want), got, "%s", typ)
	}
	k1 := padded{A: 1, B: 2, C: 3}
	check(reflect.TypeFor[padded](), &k1, bytesOf(&k1))
	var k2 big
	for i := range k2.P {
		k2.P[i] = padded{uint8(i), uint64(i) << 40, uint16(i)}
	}
	check(reflect.TypeFor[big](), &k2, bytesOf(&k2))
	k3 := [5]uint32{1, 2, 3, 4, 5}
	check(reflect.TypeFor[[5]uint32](), &k3, bytesOf(&k3))
}
