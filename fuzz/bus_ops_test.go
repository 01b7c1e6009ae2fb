package fuzz_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/shmkit/shmkit/shmbus"
)

// busSub is the model of one subscriber handle.
type busSub struct {
	s       *shmbus.Subscriber[item]
	cursor  uint64
	pending uint64 // lag to be reported by the next read (durable rejoin)
}

// busModel is the plain Go model of a Bus: the tail, the open
// subscribers' cursors, the durable subscriber's cursor while it is closed,
// and the closed-for-writes flag.
type busModel struct {
	cap       uint64
	overwrite bool
	tail      uint64
	subs      []*busSub
	durable   *busSub // open durable subscriber (also in subs)
	durCursor uint64  // durable cursor while closed
	durExists bool
	closed    bool
	trace     []string
}

// room reports whether a Block publish fits: the slowest open subscriber
// is less than a capacity behind.
func (m *busModel) room() bool {
	if m.overwrite {
		return true
	}
	for _, s := range m.subs {
		if m.tail-s.cursor >= m.cap {
			return false
		}
	}
	return true
}

// FuzzBusOps applies an op sequence decoded from the input to a real
// Bus[item] (either policy, several subscribers, a durable one) over a
// file: segment and to busModel, comparing every result: what each
// subscriber reads, when it is lagged and by how much, when the publisher
// is full, Stats.
func FuzzBusOps(f *testing.F) {
	f.Add([]byte{0, 1, 1, 1, 0, 0, 0, 0, 2, 2, 3, 0, 9})
	f.Add([]byte{1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 9})
	f.Add([]byte{0, 6, 0, 0, 2, 5, 0, 0, 0, 0, 0, 0, 6, 2, 2, 9, 8, 6, 2})
	f.Add([]byte{1, 6, 1, 0, 0, 2, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 2, 2, 9, 7, 2, 2, 2})
	f.Add([]byte{2, 1, 1, 16, 0, 0, 0, 4, 3, 4, 0, 5, 0, 0, 0, 0, 0, 9})
	dir := fuzzWorkerDir(f)
	var n int
	f.Fuzz(func(t *testing.T, in []byte) {
		r := &byteReader{b: in}
		n++
		spec := "file:" + filepath.Join(dir, fmt.Sprintf("bus-%d", n))
		t.Cleanup(func() { removeSpec(spec) })
		h := r.next()
		m := &busModel{cap: 1 << (h >> 1 % 4), overwrite: h&1 == 1}
		over := shmbus.Block
		if m.overwrite {
			over = shmbus.Overwrite
		}
		b, err := shmbus.Create[item](spec, int(m.cap), shmbus.WithOverflow(over), shmbus.WithMaxSubscribers(4))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = b.Close() }()
		for step := 0; r.i < len(r.b) && step < 400; step++ {
			b = busStep(t, step, r, b, spec, m)
		}
	})
}

func busStep(t *testing.T, step int, r *byteReader, b *shmbus.Bus[item], spec string, m *busModel) *shmbus.Bus[item] {
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("step %d: %s (model: cap %d overwrite %v tail %d subs %d closed %v)\nops: %v",
			step, fmt.Sprintf(format, args...), m.cap, m.overwrite, m.tail, len(m.subs), m.closed, m.trace)
	}
	pick := func() *busSub {
		if len(m.subs) == 0 {
			return nil
		}
		return m.subs[int(r.next())%len(m.subs)]
	}
	// read checks one message (or lag) read by s against the model.
	lagged := func(s *busSub, err error) bool {
		var le *shmbus.LaggedError
		if !errors.As(err, &le) {
			return false
		}
		var want uint64
		switch {
		case s.pending != 0:
			want = s.pending
			s.pending = 0
		case m.overwrite && m.tail-s.cursor > m.cap:
			want = m.tail - m.cap + 1 - s.cursor
			s.cursor += want
		default:
			fail("unexpected lag %v (cursor %d)", err, s.cursor)
		}
		if le.Missed != want {
			fail("lag of %d, want %d", le.Missed, want)
		}
		return true
	}
	op := r.next() % 10
	switch op {
	case 0: // TryPublish
		m.trace = append(m.trace, "pub")
		err := b.TryPublish(mkItem(m.tail))
		switch {
		case m.closed:
			if !errors.Is(err, shmbus.ErrClosed) {
				fail("TryPublish after CloseWrites: %v", err)
			}
		case !m.room():
			if !errors.Is(err, shmbus.ErrFull) {
				fail("TryPublish with no room: %v", err)
			}
		case err != nil:
			fail("TryPublish: %v", err)
		default:
			m.tail++
		}
	case 1: // Subscribe (anonymous)
		oldest := r.next()&1 == 1
		m.trace = append(m.trace, fmt.Sprintf("sub(oldest=%v)", oldest))
		if len(m.subs) >= 3 {
			return b
		}
		var opts []shmbus.SubscribeOption
		cur := m.tail
		if oldest {
			opts = append(opts, shmbus.FromOldest())
			cur = m.tail - min(m.tail, m.cap-1)
		}
		s, err := b.Subscribe(opts...)
		if err != nil {
			fail("Subscribe: %v", err)
		}
		if s.Cursor() != cur {
			fail("new subscriber at %d, want %d", s.Cursor(), cur)
		}
		m.subs = append(m.subs, &busSub{s: s, cursor: cur})
	case 2, 3: // TryNext, NextBatch
		s := pick()
		if s == nil {
			return b
		}
		want := 1
		if op == 3 {
			want = 1 + int(r.next()%5)
		}
		m.trace = append(m.trace, fmt.Sprintf("next(%d)@%d", want, s.cursor))
		buf := make([]item, want)
		var got int
		var err error
		if op == 2 {
			buf[0], err = s.s.TryNext()
			if err == nil {
				got = 1
			}
		} else {
			got, err = s.s.NextBatch(cancelled, buf)
		}
		if lagged(s, err) {
			return b
		}
		if s.cursor == m.tail {
			if m.closed && !errors.Is(err, shmbus.ErrClosed) {
				fail("drained after CloseWrites: %v, want ErrClosed", err)
			}
			if !m.closed && !errors.Is(err, shmbus.ErrEmpty) && !errors.Is(err, cancelledErr) {
				fail("empty: %v", err)
			}
			return b
		}
		if err != nil {
			fail("read at %d of %d: %v", s.cursor, m.tail, err)
		}
		if got < 1 || uint64(got) > min(uint64(want), m.tail-s.cursor) {
			fail("read %d messages, %d asked, %d there", got, want, m.tail-s.cursor)
		}
		for i := range got {
			if buf[i] != mkItem(s.cursor) {
				fail("read %v, want message %d", buf[i], s.cursor)
			}
			s.cursor++
		}
	case 4: // Peek, Release (Block only)
		s := pick()
		if s == nil {
			return b
		}
		k := int(r.next() % 6)
		m.trace = append(m.trace, fmt.Sprintf("peek(%d)@%d", k, s.cursor))
		p, err := s.s.Peek(k)
		if m.overwrite {
			if !errors.Is(err, shmbus.ErrUsage) {
				fail("Peek on overwrite: %v", err)
			}
			return b
		}
		if lagged(s, err) {
			return b
		}
		if s.cursor == m.tail && m.closed {
			if !errors.Is(err, shmbus.ErrClosed) {
				fail("Peek drained after CloseWrites: %v", err)
			}
			return b
		}
		if err != nil {
			fail("Peek: %v", err)
		}
		if uint64(len(p)) > min(uint64(k), m.tail-s.cursor) || (k > 0 && m.tail > s.cursor && len(p) == 0) {
			fail("Peek(%d) gave %d with %d there", k, len(p), m.tail-s.cursor)
		}
		for i := range p {
			if p[i] != mkItem(s.cursor+uint64(i)) {
				fail("peeked %v at %d", p[i], i)
			}
		}
		rel := 0
		if len(p) > 0 {
			rel = int(r.next()) % (len(p) + 1)
		}
		if err := s.s.Release(rel); err != nil {
			fail("Release(%d): %v", rel, err)
		}
		s.cursor += uint64(rel)
	case 5: // Close a subscriber
		s := pick()
		if s == nil {
			return b
		}
		m.trace = append(m.trace, "unsub")
		if err := s.s.Close(); err != nil {
			fail("Close: %v", err)
		}
		m.drop(s)
	case 6: // Subscribe Durable("d")
		m.trace = append(m.trace, "durable")
		s, err := b.Subscribe(shmbus.Durable("d"))
		if m.durable != nil {
			if !errors.Is(err, shmbus.ErrRoleTaken) {
				fail("second holder of a durable name: %v", err)
			}
			return b
		}
		if len(m.subs) >= 4 {
			return b
		}
		if err != nil {
			fail("Subscribe durable: %v", err)
		}
		ns := &busSub{s: s, cursor: m.tail}
		if m.durExists {
			ns.cursor = m.durCursor
			if !m.overwrite && m.tail-ns.cursor >= m.cap {
				next := m.tail - m.cap + 1
				ns.pending = next - ns.cursor
				ns.cursor = next
			}
		}
		if s.Cursor() != ns.cursor {
			fail("durable resumed at %d, want %d", s.Cursor(), ns.cursor)
		}
		m.durExists = true
		m.durable = ns
		m.subs = append(m.subs, ns)
	case 7: // CloseWrites
		m.trace = append(m.trace, "closewrites")
		err := b.CloseWrites()
		if m.closed {
			if !errors.Is(err, shmbus.ErrClosed) {
				fail("CloseWrites twice: %v", err)
			}
			return b
		}
		if err != nil {
			fail("CloseWrites: %v", err)
		}
		m.closed = true
	case 8: // Close and reopen the bus handle: its subscribers go too
		m.trace = append(m.trace, "reopen")
		if err := b.Close(); err != nil {
			fail("Close: %v", err)
		}
		for len(m.subs) > 0 {
			m.drop(m.subs[0])
		}
		nb, err := shmbus.Open[item](spec)
		if err != nil {
			fail("Open: %v", err)
		}
		return nb
	case 9: // Stats
		m.trace = append(m.trace, "stats")
		st, err := b.Stats()
		if err != nil {
			fail("Stats: %v", err)
		}
		if st.Published != m.tail || st.Closed != m.closed || st.Cap != m.cap {
			fail("Stats %+v", st)
		}
		want := len(m.subs)
		if m.durExists && m.durable == nil {
			want++
		}
		if len(st.Subscribers) != want {
			fail("Stats lists %d subscribers, want %d", len(st.Subscribers), want)
		}
		for _, ss := range st.Subscribers {
			if ss.Cursor > m.tail || ss.Lag != m.tail-ss.Cursor {
				fail("subscriber stats %+v", ss)
			}
		}
	}
	return b
}

// drop removes s from the model (closed).
func (m *busModel) drop(s *busSub) {
	for i, x := range m.subs {
		if x == s {
			m.subs = append(m.subs[:i], m.subs[i+1:]...)
			break
		}
	}
	if s == m.durable {
		m.durable = nil
		m.durCursor = s.cursor
		if s.pending != 0 {
			// The lag was never reported; the cursor already moved.
			s.pending = 0
		}
	}
}

var cancelledErr = cancelled.Err()
