package shmring

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/stretchr/testify/require"
)

// payload returns record seq's content: a length derived from seq (up to
// maxLen) and bytes derived from seq and position.
func payload(seq uint64, maxLen int, buf []byte) []byte {
	n := int(mix(seq+1) % uint64(maxLen+1))
	b := buf[:n]
	x := mix(seq ^ 0x9e3779b97f4a7c15)
	for i := range b {
		if i%8 == 0 {
			x = mix(x + uint64(i))
		}
		b[i] = byte(x >> (8 * (i % 8)))
	}
	return b
}

func checkPayload(seq uint64, maxLen int, got []byte, scratch []byte) error {
	want := payload(seq, maxLen, scratch)
	if len(got) != len(want) {
		return fmt.Errorf("record %d: %d bytes, want %d", seq, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Errorf("record %d: byte %d is %#x, want %#x", seq, i, got[i], want[i])
		}
	}
	return nil
}

func TestByteRingBasic(t *testing.T) {
	ctx := context.Background()
	r, err := CreateBytes(posixSpec(t), 256)
	require.NoError(t, err)
	defer r.Close()
	require.Equal(t, 256, r.Cap())
	require.Equal(t, 120, r.MaxRecord())
	_, err = r.Reserve(121)
	require.ErrorIs(t, err, ErrTooLarge)
	require.ErrorIs(t, r.Write(ctx, make([]byte, 1000)), ErrTooLarge)
	_, err = r.Read()
	require.ErrorIs(t, err, ErrEmpty)

	require.NoError(t, r.Write(ctx, []byte("hello")))
	require.NoError(t, r.Write(ctx, nil))
	require.Equal(t, 16+8, r.Len())
	b, err := r.Read()
	require.NoError(t, err)
	require.Equal(t, "hello", string(b))
	b, err = r.Read()
	require.NoError(t, err)
	require.Empty(t, b)
	_, err = r.Read()
	require.ErrorIs(t, err, ErrEmpty)
	require.NoError(t, r.Release())
	require.Equal(t, 0, r.Len())

	// Fill so the next record needs a padding record at the wrap.
	for range 7 {
		require.NoError(t, r.TryWrite(make([]byte, 24))) // 32 bytes each
	}
	require.ErrorIs(t, r.TryWrite(make([]byte, 100)), ErrFull)
	buf := make([]byte, 200)
	for range 7 {
		n, err := r.ReadInto(ctx, buf)
		require.NoError(t, err)
		require.Equal(t, 24, n)
	}
	// Tail at 248: a 100-byte record does not fit in the last 8 bytes.
	require.NoError(t, r.Write(ctx, make([]byte, 100)))
	require.Equal(t, 8+112, r.Len(), "padding plus record")
	_, err = r.ReadInto(ctx, buf[:99])
	require.ErrorIs(t, err, io.ErrShortBuffer)
	n, err := r.ReadInto(ctx, buf)
	require.NoError(t, err)
	require.Equal(t, 100, n)

	// Reserve/Commit of less than reserved.
	s, err := r.Reserve(50)
	require.NoError(t, err)
	copy(s, "abc")
	require.ErrorIs(t, r.Commit(51), ErrUsage)
	require.NoError(t, r.Commit(3))
	require.ErrorIs(t, r.Commit(0), ErrUsage, "nothing reserved")
	b, err = r.ReadWait(ctx)
	require.NoError(t, err)
	require.Equal(t, "abc", string(b))
	require.NoError(t, r.Release())

	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	_, err = r.ReadWait(cctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// TestByteRingModel checks random Reserve/Commit/Read/Release sequences
// against a model that tracks records and the byte accounting (headers,
// alignment and padding) independently.
func TestByteRingModel(t *testing.T) {
	for _, capacity := range []int{64, 256, 4096} {
		t.Run(strconv.Itoa(capacity), func(t *testing.T) {
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 9))
			r, err := CreateBytes(posixSpec(t), capacity)
			require.NoError(t, err)
			defer r.Close()
			maxRec := capacity/2 - 8
			type rec struct {
				data []byte
				span uint64 // bytes including header, alignment, padding before it
			}
			var (
				recs       []rec // published, not released
				readIdx    int   // records read, not released
				tail, head uint64
				seq        uint64
				scratch    = make([]byte, capacity)
				resv       = -1 // reserved size, -1: none
				resvSpan   uint64
			)
			for step := range 20000 {
				switch rng.IntN(5) {
				case 0: // Reserve
					n := rng.IntN(maxRec + 1)
					need := (8 + uint64(n) + 7) &^ 7
					off := tail % uint64(capacity)
					span := need
					if need > uint64(capacity)-off {
						span += uint64(capacity) - off
					}
					s, err := r.Reserve(n)
					if span > uint64(capacity)-(tail-head) {
						require.ErrorIs(t, err, ErrFull, "step %d", step)
						resv = -1
						continue
					}
					require.NoError(t, err, "step %d", step)
					require.Len(t, s, n)
					resv, resvSpan = n, span-need
				case 1: // Commit
					if resv < 0 {
						require.ErrorIs(t, r.Commit(0), ErrUsage)
						continue
					}
					p := payload(seq, resv, scratch)
					s, err := r.Reserve(resv) // same reservation again
					require.NoError(t, err)
					copy(s, p)
					require.NoError(t, r.Commit(len(p)))
					span := resvSpan + (8+uint64(len(p))+7)&^7
					recs = append(recs, rec{append([]byte{}, p...), span})
					tail += span
					seq++
					resv = -1
				case 2: // Read
					b, err := r.Read()
					if readIdx == len(recs) {
						require.ErrorIs(t, err, ErrEmpty)
						continue
					}
					require.NoError(t, err)
					require.Equal(t, recs[readIdx].data, b, "step %d", step)
					readIdx++
				case 3: // Release
					require.NoError(t, r.Release())
					for _, x := range recs[:readIdx] {
						head += x.span
					}
					recs = recs[readIdx:]
					readIdx = 0
				case 4:
					require.Equal(t, int(tail-head), r.Len(), "step %d", step)
					st := statsOf(t, r)
					require.Equal(t, tail, st.Tail)
					require.Equal(t, head, st.Head)
				}
			}
		})
	}
}

// Byte ring children: args spec count maxLen.
var bytesProducer = testproc.Register("bytes-produce", func(a []string) error {
	r, err := OpenBytes(a[0])
	if err != nil {
		return err
	}
	defer r.Close()
	count, maxLen := u64(a[1]), atoi(a[2])
	scratch := make([]byte, maxLen)
	ctx := context.Background()
	for seq := range count {
		p := payload(seq, maxLen, scratch)
		if seq%2 == 0 {
			if err := r.Write(ctx, p); err != nil {
				return err
			}
			continue
		}
		// Zero-copy path, reserving more than it commits.
		b, err := r.ReserveWait(ctx, maxLen)
		if err != nil {
			return err
		}
		copy(b, p)
		if err := r.Commit(len(p)); err != nil {
			return err
		}
	}
	return nil
})

var bytesConsumer = testproc.Register("bytes-consume", func(a []string) error {
	r, err := OpenBytes(a[0])
	if err != nil {
		return err
	}
	defer r.Close()
	count, maxLen := u64(a[1]), atoi(a[2])
	scratch := make([]byte, maxLen)
	buf := make([]byte, maxLen)
	ctx := context.Background()
	for seq := uint64(0); seq < count; {
		if seq%3 == 0 {
			n, err := r.ReadInto(ctx, buf)
			if err != nil {
				return err
			}
			if err := checkPayload(seq, maxLen, buf[:n], scratch); err != nil {
				return err
			}
			seq++
			continue
		}
		// Zero-copy: wait for one record, read up to two more that are
		// already there (waiting for them while holding the first would
		// deadlock with a producer that needs their room), then release.
		for k := 0; k < 3 && seq < count; k++ {
			var b []byte
			var err error
			if k == 0 {
				b, err = r.ReadWait(ctx)
			} else if b, err = r.Read(); errors.Is(err, ErrEmpty) {
				break
			}
			if err != nil {
				return err
			}
			if err := checkPayload(seq, maxLen, b, scratch); err != nil {
				return err
			}
			seq++
		}
		if err := r.Release(); err != nil {
			return err
		}
	}
	return nil
})

// TestByteRingCrossProcess streams records of random lengths (content
// derived from the sequence number) between two processes.
func TestByteRingCrossProcess(t *testing.T) {
	scale := uint64(1)
	if soak() {
		scale = 100
	}
	for _, c := range []struct {
		capacity, maxLen int
		count            uint64
	}{
		{64, 24, 100_000},
		{4096, 300, 200_000},
		{1 << 16, 4000, 50_000},
	} {
		t.Run(fmt.Sprintf("cap%d-max%d", c.capacity, c.maxLen), func(t *testing.T) {
			spec := posixSpec(t)
			r, err := CreateBytes(spec, c.capacity)
			require.NoError(t, err)
			require.NoError(t, r.Close())
			args := []string{spec, strconv.FormatUint(c.count*scale, 10), strconv.Itoa(c.maxLen)}
			cons := bytesConsumer.Start(t, args...)
			prod := bytesProducer.Start(t, args...)
			timeout := 2 * time.Minute * time.Duration(scale)
			require.NoError(t, prod.Wait(timeout), prod.Output())
			require.NoError(t, cons.Wait(timeout), cons.Output())
		})
	}
}

// TestByteRingCorrupt writes bad headers and cursors: Read must return
// ErrCorrupt, never panic or return bytes outside the region.
func TestByteRingCorrupt(t *testing.T) {
	type scribble func(r *ByteRing)
	hdr := func(off int, n, tag uint32) scribble {
		return func(r *ByteRing) {
			binary.LittleEndian.PutUint64(r.data[off:], uint64(n)|uint64(tag)<<32)
		}
	}
	cases := map[string][]scribble{
		"unknown tag":      {hdr(0, 5, 0xdeadbeef)},
		"zero header":      {hdr(0, 0, 0)},
		"length too large": {hdr(0, 1<<20, tagRecord)},
		"beyond max":       {hdr(0, 121, tagRecord)},
		"past tail":        {hdr(0, 100, tagRecord)}, // tail is 16
		"short padding":    {hdr(0, 8, tagPadding)},
		"misaligned tail": {func(r *ByteRing) {
			r.ctl.tail.Store(13)
		}},
		"tail too far": {func(r *ByteRing) {
			r.ctl.tail.Store(1 << 30)
		}},
	}
	for name, scr := range cases {
		t.Run(name, func(t *testing.T) {
			r, err := CreateBytes(posixSpec(t), 256)
			require.NoError(t, err)
			defer r.Close()
			require.NoError(t, r.TryWrite([]byte("12345678"))) // tail 16
			for _, f := range scr {
				f(r)
			}
			_, err = r.Read()
			require.ErrorIs(t, err, ErrCorrupt)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			defer cancel()
			_, err = r.ReadInto(ctx, make([]byte, 300))
			require.ErrorIs(t, err, ErrCorrupt)
		})
	}

	// A misaligned head seen by a new producer.
	r, err := CreateBytes(posixSpec(t), 256)
	require.NoError(t, err)
	defer r.Close()
	r.ctl.head.Store(3)
	r.ctl.tail.Store(3)
	_, err = r.Reserve(8)
	require.ErrorIs(t, err, ErrCorrupt)

	// Random garbage over the whole data region and cursors: no panics.
	rng := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		g, err := CreateBytes(posixSpec(t), 64)
		require.NoError(t, err)
		for i := range g.data {
			g.data[i] = byte(rng.Uint32())
		}
		if rng.IntN(2) == 0 {
			g.ctl.tail.Store(rng.Uint64N(128) &^ 7)
		}
		for range 4 {
			if _, err := g.Read(); err != nil {
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrEmpty) {
					t.Fatal(err)
				}
				break
			}
		}
		require.NoError(t, g.Close())
	}
}

// TestByteRingProducerCrash kills the producer inside Reserve..Commit: the
// consumer must see only whole records, in order, and nothing of the
// record in flight.
func TestByteRingProducerCrash(t *testing.T) {
	for _, point := range []string{"ring.reserved", "ring.committing"} {
		t.Run(point, func(t *testing.T) {
			spec := posixSpec(t)
			r, err := CreateBytes(spec, 1024)
			require.NoError(t, err)
			defer r.Close()
			const maxLen = 100
			nth := 50 + rand.IntN(200)
			cmd := bytesProducer.Command(t, spec, "100000", strconv.Itoa(maxLen))
			cmd.Env = append(cmd.Env, crashpoint.Arm(point, nth))
			p := testproc.StartCmd(t, cmd)
			scratch := make([]byte, maxLen)
			seq := uint64(0)
			read := func() {
				for {
					b, err := r.Read()
					if errors.Is(err, ErrEmpty) {
						return
					}
					require.NoError(t, err)
					require.NoError(t, checkPayload(seq, maxLen, b, scratch))
					seq++
					require.NoError(t, r.Release())
				}
			}
		loop:
			for {
				select {
				case <-p.Done():
					break loop
				default:
					read()
				}
			}
			require.Error(t, p.Wait(time.Second), "the producer should have died at %s:%d", point, nth)
			read()
			// Both points are hit once per record (Reserve only after it
			// succeeds), so exactly the nth-1 earlier records were committed.
			require.Equal(t, uint64(nth-1), seq)
			st := statsOf(t, r)
			require.Equal(t, st.Tail, st.Head, "nothing left unread")
		})
	}
}

// TestByteRingReadIntoFreshHandle: a short-buffer ReadInto as the first
// consumer call of a handle must leave the record in place, not rewind to
// a stale position (regression, found by fuzz/FuzzByteRingOps).
func TestByteRingReadIntoFreshHandle(t *testing.T) {
	spec := posixSpec(t)
	r, err := CreateBytes(spec, 64)
	require.NoError(t, err)
	defer r.Close()
	ctx := context.Background()
	require.NoError(t, r.Write(ctx, []byte("first")))
	require.NoError(t, r.Write(ctx, []byte("second record")))
	n, err := r.ReadInto(ctx, make([]byte, 10))
	require.NoError(t, err)
	require.Equal(t, 5, n)
	require.NoError(t, r.Close())

	c, err := OpenBytes(spec)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.ReadInto(ctx, make([]byte, 3))
	require.ErrorIs(t, err, io.ErrShortBuffer)
	b, err := c.Read()
	require.NoError(t, err)
	require.Equal(t, "second record", string(b))
}
