package fuzz_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/shmring"
)

// item is the ring element of the op fuzzers: 12 bytes, not a power of
// two, so slot arithmetic cannot hide behind shifts.
type item [3]uint32

func mkItem(v uint64) item { return item{uint32(v), uint32(v >> 32), ^uint32(v)} }

// cancelled is a context that is already done: blocking calls made with it
// must do what the non-blocking ones do when they can proceed (the fast
// path ignores the context), and return its error when they cannot.
var cancelled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// ringModel is the plain Go model of a Ring: a slice of published items and
// the cursors, plus the handle's pending claim and peek.
type ringModel struct {
	cap        uint64
	head, tail uint64 // lifetime counters, as the ring keeps them
	items      []item // published, not advanced; items[0] is at head
	claimed    uint64 // slots of the outstanding Claim
	peeked     uint64 // items of the outstanding Peek
	next       uint64 // value of the next item made
	trace      []string
}

func (m *ringModel) free() uint64 { return m.cap - uint64(len(m.items)) }

// FuzzRingOps applies an op sequence decoded from the input to a real
// Ring[item] over a file: segment and to ringModel, comparing every
// result. One handle holds both roles, as the package allows, and is
// sometimes closed and reopened (state must survive; pending claims and
// peeks must not).
func FuzzRingOps(f *testing.F) {
	f.Add([]byte{2, 0, 0, 0, 2, 2, 8})
	f.Add([]byte{3, 4, 8, 5, 3, 6, 9, 7, 2, 8, 0, 2, 11, 8})
	f.Add([]byte{0, 0, 0, 1, 2, 3, 10, 0, 9, 4, 11, 12, 0, 0, 6, 1, 7, 1})
	f.Add([]byte{4, 9, 16, 10, 5, 9, 16, 10, 7, 4, 3, 5, 2, 6, 3, 7, 2, 8, 13, 14})
	dir := fuzzWorkerDir(f)
	var n int
	f.Fuzz(func(t *testing.T, in []byte) {
		r := &byteReader{b: in}
		n++
		spec := "file:" + filepath.Join(dir, fmt.Sprintf("ring-%d", n))
		t.Cleanup(func() { removeSpec(spec) })
		m := &ringModel{cap: 1 << (r.next() % 5)}
		ring, err := shmring.Create[item](spec, int(m.cap))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = ring.Close() }()
		if ring.Cap() != int(m.cap) {
			t.Fatalf("Cap %d, want %d", ring.Cap(), m.cap)
		}
		for step := 0; r.i < len(r.b) && step < 500; step++ {
			ring = ringStep(t, step, r, ring, spec, m)
		}
	})
}

func ringStep(t *testing.T, step int, r *byteReader, ring *shmring.Ring[item], spec string, m *ringModel) *shmring.Ring[item] {
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("step %d: %s (model: cap %d head %d tail %d items %d claimed %d peeked %d)\nops: %v",
			step, fmt.Sprintf(format, args...), m.cap, m.head, m.tail, len(m.items), m.claimed, m.peeked, m.trace)
	}
	op := r.next() % 15
	m.trace = append(m.trace, fmt.Sprint(op))
	switch op {
	case 0, 1: // TryPush / Push with a done context
		v := mkItem(m.next)
		var ok bool
		if op == 0 {
			ok = ring.TryPush(v)
		} else {
			err := ring.Push(cancelled, v)
			if err != nil && !errors.Is(err, context.Canceled) {
				fail("Push: %v", err)
			}
			ok = err == nil
		}
		m.claimed = 0
		if want := m.free() > 0; ok != want {
			fail("push succeeded=%v, want %v", ok, want)
		}
		if ok {
			m.items = append(m.items, v)
			m.tail++
			m.next++
		}
	case 2, 3: // TryPop / Pop with a done context
		var v item
		var ok bool
		if op == 2 {
			v, ok = ring.TryPop()
		} else {
			var err error
			v, err = ring.Pop(cancelled)
			if err != nil && !errors.Is(err, context.Canceled) {
				fail("Pop: %v", err)
			}
			ok = err == nil
		}
		m.peeked = 0
		if want := len(m.items) > 0; ok != want {
			fail("pop succeeded=%v, want %v", ok, want)
		}
		if ok {
			if v != m.items[0] {
				fail("popped %v, want %v", v, m.items[0])
			}
			m.items = m.items[1:]
			m.head++
		}
	case 4: // Claim n and fill the slots
		n := int(r.next() % byte(m.cap+2))
		s, err := ring.Claim(n)
		if err != nil {
			fail("Claim(%d): %v", n, err)
		}
		want := uint64(0)
		if n > 0 {
			want = min(uint64(n), m.free(), m.cap-m.tail%m.cap)
		}
		if uint64(len(s)) != want {
			fail("Claim(%d) gave %d slots, want %d", n, len(s), want)
		}
		for i := range s {
			s[i] = mkItem(m.next + uint64(i))
		}
		m.claimed = want
	case 5: // Publish k of the claim
		k := int(r.next() % byte(m.claimed+2))
		err := ring.Publish(k)
		if uint64(k) > m.claimed {
			if !errors.Is(err, shmring.ErrUsage) {
				fail("Publish(%d) with %d claimed: %v, want ErrUsage", k, m.claimed, err)
			}
			return ring
		}
		if err != nil {
			fail("Publish(%d): %v", k, err)
		}
		for range k {
			m.items = append(m.items, mkItem(m.next))
			m.next++
		}
		m.tail += uint64(k)
		m.claimed = 0
	case 6: // Peek n
		n := int(r.next() % byte(m.cap+2))
		s, err := ring.Peek(n)
		if err != nil {
			fail("Peek(%d): %v", n, err)
		}
		want := uint64(0)
		if n > 0 {
			want = min(uint64(n), uint64(len(m.items)), m.cap-m.head%m.cap)
		}
		if uint64(len(s)) != want {
			fail("Peek(%d) gave %d items, want %d", n, len(s), want)
		}
		if !slices.Equal(s, m.items[:want]) {
			fail("Peek(%d) = %v, want %v", n, s, m.items[:want])
		}
		m.peeked = want
	case 7: // Advance k of the peek
		k := int(r.next() % byte(m.peeked+2))
		err := ring.Advance(k)
		if uint64(k) > m.peeked {
			if !errors.Is(err, shmring.ErrUsage) {
				fail("Advance(%d) with %d peeked: %v, want ErrUsage", k, m.peeked, err)
			}
			return ring
		}
		if err != nil {
			fail("Advance(%d): %v", k, err)
		}
		m.items = m.items[k:]
		m.head += uint64(k)
		m.peeked = 0
	case 8: // Len and Stats
		if ring.Len() != len(m.items) {
			fail("Len %d, want %d", ring.Len(), len(m.items))
		}
		st, err := ring.Stats()
		if err != nil {
			fail("Stats: %v", err)
		}
		if st.Len != uint64(len(m.items)) || st.Head != m.head || st.Tail != m.tail || st.Cap != m.cap {
			fail("Stats %+v", st)
		}
	case 9: // PushBatch with a done context
		items := make([]item, int(r.next()%byte(2*m.cap+1)))
		for i := range items {
			items[i] = mkItem(m.next + uint64(i))
		}
		n, err := ring.PushBatch(cancelled, items)
		want := min(uint64(len(items)), m.free())
		if uint64(n) != want {
			fail("PushBatch(%d) pushed %d, want %d (err %v)", len(items), n, want, err)
		}
		if (err == nil) != (n == len(items)) || (err != nil && !errors.Is(err, context.Canceled)) {
			fail("PushBatch(%d) pushed %d: %v", len(items), n, err)
		}
		m.items = append(m.items, items[:n]...)
		m.tail += uint64(n)
		m.next += uint64(n)
		if len(items) > 0 { // an empty batch is a no-op
			m.claimed = 0
		}
	case 10: // PopBatch with a done context
		buf := make([]item, int(r.next()%byte(2*m.cap+1)))
		n, err := ring.PopBatch(cancelled, buf)
		if len(buf) == 0 { // a no-op
			if n != 0 || err != nil {
				fail("PopBatch(empty buf) = %d, %v", n, err)
			}
			return ring
		}
		if len(m.items) == 0 {
			m.peeked = 0
			if n != 0 || !errors.Is(err, context.Canceled) {
				fail("PopBatch on an empty ring = %d, %v; want 0, context.Canceled", n, err)
			}
			return ring
		}
		m.peeked = 0
		want := min(len(buf), len(m.items))
		if err != nil || n < 1 || n > want {
			fail("PopBatch(%d) = %d, %v; want 1..%d", len(buf), n, err, want)
		}
		if !slices.Equal(buf[:n], m.items[:n]) {
			fail("PopBatch = %v, want %v", buf[:n], m.items[:n])
		}
		m.items = m.items[n:]
		m.head += uint64(n)
	case 11: // Close and reopen: the ring persists, the handle's claims do not
		if err := ring.Close(); err != nil {
			fail("Close: %v", err)
		}
		if _, err := ring.Peek(1); !errors.Is(err, shmring.ErrClosed) {
			fail("Peek after Close: %v, want ErrClosed", err)
		}
		var err error
		ring, err = shmring.Open[item](spec)
		if err != nil {
			fail("reopen: %v", err)
		}
		m.claimed, m.peeked = 0, 0
	case 12: // Open the same segment as another type: refused, not misread
		if _, err := shmring.Open[uint64](spec); !errors.Is(err, layout.ErrTypeMismatch) {
			fail("Open[uint64] of a ring of item: %v, want ErrTypeMismatch", err)
		}
	case 13: // Claim without Publish, then Push: the claim is dropped
		if _, err := ring.Claim(1); err != nil {
			fail("Claim(1): %v", err)
		}
		m.claimed = min(1, m.free())
		if err := ring.Publish(0); err != nil {
			fail("Publish(0): %v", err)
		}
		m.claimed = 0
	case 14: // Peek then Pop: the peek is dropped, the item is popped once
		if _, err := ring.Peek(int(m.cap)); err != nil {
			fail("Peek: %v", err)
		}
		v, ok := ring.TryPop()
		if ok != (len(m.items) > 0) || (ok && v != m.items[0]) {
			fail("TryPop after Peek = %v, %v", v, ok)
		}
		if ok {
			m.items = m.items[1:]
			m.head++
		}
		m.peeked = 0
		if err := ring.Advance(1); !errors.Is(err, shmring.ErrUsage) {
			fail("Advance(1) after Pop dropped the peek: %v, want ErrUsage", err)
		}
	}
	return ring
}
