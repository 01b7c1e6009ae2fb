package fuzz_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/shmkit/shmkit/shmring"
)

// byteRingModel models a ByteRing byte for byte: records are an 8-byte
// header plus the payload rounded up to 8, never wrapped (a padding record
// fills the end of the region instead), and the cursors count bytes.
type byteRingModel struct {
	cap             uint64
	head, tail      uint64
	readEnd         uint64   // end of what Read has returned since the last Release
	records         []record // published, not released
	read            int      // records[:read] were returned by Read since the last Release
	resv            bool     // a Reserve is outstanding
	resvPad, resvN  uint64
	nextID          uint64
	trace           []string
	maxRecord       int
	lastReservation []byte
}

type record struct {
	start   uint64 // cursor of the record's header (after any padding)
	payload []byte
}

func align8(n uint64) uint64 { return (n + 7) &^ 7 }

// plan is where a record of n bytes would go now: padding first when it
// does not fit before the region end.
func (m *byteRingModel) plan(n int) (pad, total uint64) {
	need := align8(8 + uint64(n))
	if contig := m.cap - m.tail%m.cap; need > contig {
		pad = contig
	}
	return pad, pad + need
}

func (m *byteRingModel) payload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(m.nextID*31 + uint64(i)*7 + 1)
	}
	m.nextID++
	return p
}

// FuzzByteRingOps drives a real ByteRing and byteRingModel with the same op
// sequence and compares every result, including where padding goes and
// exactly when the ring is full.
func FuzzByteRingOps(f *testing.F) {
	f.Add([]byte{0, 0, 10, 2, 3})
	f.Add([]byte{1, 0, 20, 0, 20, 0, 20, 2, 2, 3, 0, 27, 2, 3})
	f.Add([]byte{2, 1, 30, 2, 30, 3, 4, 5, 0, 40, 6, 4, 7, 8, 2, 9})
	f.Add([]byte{0, 4, 13, 0, 13, 6, 30, 2, 3, 0, 25, 8, 10, 11, 9, 2})
	dir := fuzzWorkerDir(f)
	var n int
	f.Fuzz(func(t *testing.T, in []byte) {
		r := &byteReader{b: in}
		n++
		spec := "file:" + filepath.Join(dir, fmt.Sprintf("bytering-%d", n))
		t.Cleanup(func() { removeSpec(spec) })
		m := &byteRingModel{cap: 64 << (r.next() % 4)}
		br, err := shmring.CreateBytes(spec, int(m.cap))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = br.Close() }()
		m.maxRecord = int(m.cap/2 - 8)
		if br.Cap() != int(m.cap) || br.MaxRecord() != m.maxRecord {
			t.Fatalf("Cap %d MaxRecord %d, want %d %d", br.Cap(), br.MaxRecord(), m.cap, m.maxRecord)
		}
		for step := 0; r.i < len(r.b) && step < 500; step++ {
			br = byteRingStep(t, step, r, br, spec, m)
		}
	})
}

func byteRingStep(t *testing.T, step int, r *byteReader, br *shmring.ByteRing, spec string, m *byteRingModel) *shmring.ByteRing {
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("step %d: %s (model: cap %d head %d tail %d readEnd %d records %d read %d resv %v)\nops: %v",
			step, fmt.Sprintf(format, args...), m.cap, m.head, m.tail, m.readEnd, len(m.records), m.read, m.resv, m.trace)
	}
	// Record sizes cluster around the interesting ones: 0, multiples of 8
	// and their neighbours, MaxRecord and just above.
	size := func() int {
		b := r.next()
		switch b % 4 {
		case 0:
			return m.maxRecord + int(b/4)%3 - 1
		default:
			return int(b/4) % (m.maxRecord + 2)
		}
	}
	op := r.next() % 12
	m.trace = append(m.trace, fmt.Sprint(op))
	switch op {
	case 0, 1: // TryWrite / Write with a done context
		p := m.payload(size())
		var err error
		if op == 0 {
			err = br.TryWrite(p)
		} else {
			err = br.Write(cancelled, p)
		}
		m.resv = false
		m.trace[len(m.trace)-1] += fmt.Sprintf("(%d)", len(p))
		if len(p) > m.maxRecord {
			if !errors.Is(err, shmring.ErrTooLarge) {
				fail("write of %d bytes (max %d): %v, want ErrTooLarge", len(p), m.maxRecord, err)
			}
			return br
		}
		pad, total := m.plan(len(p))
		if m.cap-(m.tail-m.head) < total {
			want := shmring.ErrFull
			if op == 1 {
				want = context.Canceled
			}
			if !errors.Is(err, want) {
				fail("write of %d bytes needing %d with %d free: %v, want %v", len(p), total, m.cap-(m.tail-m.head), err, want)
			}
			return br
		}
		if err != nil {
			fail("write of %d bytes: %v", len(p), err)
		}
		m.records = append(m.records, record{start: m.tail + pad, payload: p})
		m.tail += total
	case 2: // Read
		got, err := br.Read()
		if m.read == len(m.records) {
			if !errors.Is(err, shmring.ErrEmpty) {
				fail("Read with nothing unread: %q, %v; want ErrEmpty", got, err)
			}
			return br
		}
		want := m.records[m.read]
		if err != nil || !bytes.Equal(got, want.payload) {
			fail("Read = %d bytes %v, want %d bytes\n got %x\nwant %x", len(got), err, len(want.payload), got, want.payload)
		}
		m.read++
		m.readEnd = want.start + align8(8+uint64(len(want.payload)))
	case 3: // Release
		if err := br.Release(); err != nil {
			fail("Release: %v", err)
		}
		if m.read > 0 {
			m.head = m.readEnd
			m.records = m.records[m.read:]
			m.read = 0
		}
	case 4: // Reserve n
		n := size()
		b, err := br.Reserve(n)
		m.resv = false
		m.trace[len(m.trace)-1] += fmt.Sprintf("(%d)", n)
		if n > m.maxRecord {
			if !errors.Is(err, shmring.ErrTooLarge) {
				fail("Reserve(%d) (max %d): %v, want ErrTooLarge", n, m.maxRecord, err)
			}
			return br
		}
		pad, total := m.plan(n)
		if m.cap-(m.tail-m.head) < total {
			if !errors.Is(err, shmring.ErrFull) {
				fail("Reserve(%d) needing %d with %d free: %v, want ErrFull", n, total, m.cap-(m.tail-m.head), err)
			}
			return br
		}
		if err != nil || len(b) != n {
			fail("Reserve(%d) = %d bytes, %v", n, len(b), err)
		}
		copy(b, m.payload(n))
		m.resv, m.resvPad, m.resvN, m.lastReservation = true, pad, uint64(n), b
	case 5: // Commit k of the reservation
		k := int(r.next() % byte(min(m.resvN+2, 255)))
		m.trace[len(m.trace)-1] += fmt.Sprintf("(%d)", k)
		err := br.Commit(k)
		if !m.resv || uint64(k) > m.resvN {
			if !errors.Is(err, shmring.ErrUsage) {
				fail("Commit(%d) with reservation %v of %d: %v, want ErrUsage", k, m.resv, m.resvN, err)
			}
			return br
		}
		if err != nil {
			fail("Commit(%d): %v", k, err)
		}
		p := append([]byte(nil), m.lastReservation[:k]...)
		m.records = append(m.records, record{start: m.tail + m.resvPad, payload: p})
		m.tail += m.resvPad + align8(8+uint64(k))
		m.resv = false
	case 6: // ReadInto with a done context
		buf := make([]byte, size())
		n, err := br.ReadInto(cancelled, buf)
		if m.read == len(m.records) {
			if !errors.Is(err, context.Canceled) {
				fail("ReadInto with nothing unread: %d, %v; want context.Canceled", n, err)
			}
			return br
		}
		want := m.records[m.read]
		if len(want.payload) > len(buf) {
			if !errors.Is(err, io.ErrShortBuffer) {
				fail("ReadInto(%d bytes) of a %d-byte record: %v, want io.ErrShortBuffer", len(buf), len(want.payload), err)
			}
			return br
		}
		if err != nil || !bytes.Equal(buf[:n], want.payload) {
			fail("ReadInto = %d, %v; want %d bytes", n, err, len(want.payload))
		}
		m.read++
		m.head = want.start + align8(8+uint64(len(want.payload)))
		m.readEnd = m.head
		m.records = m.records[m.read:]
		m.read = 0
	case 7: // Len and Stats
		if br.Len() != int(m.tail-m.head) {
			fail("Len %d, want %d", br.Len(), m.tail-m.head)
		}
		st, err := br.Stats()
		if err != nil {
			fail("Stats: %v", err)
		}
		if st.Head != m.head || st.Tail != m.tail || st.Cap != m.cap {
			fail("Stats %+v", st)
		}
	case 8: // Close and reopen: unreleased reads are read again
		if err := br.Close(); err != nil {
			fail("Close: %v", err)
		}
		if err := br.TryWrite([]byte("x")); !errors.Is(err, shmring.ErrClosed) {
			fail("TryWrite after Close: %v, want ErrClosed", err)
		}
		var err error
		if br, err = shmring.OpenBytes(spec); err != nil {
			fail("reopen: %v", err)
		}
		m.read, m.readEnd, m.resv = 0, m.head, false
	case 9, 10, 11: // more writes and reads than anything else
		p := m.payload(int(r.next()) % (m.maxRecord/2 + 1))
		err := br.TryWrite(p)
		m.resv = false
		pad, total := m.plan(len(p))
		if m.cap-(m.tail-m.head) < total {
			if !errors.Is(err, shmring.ErrFull) {
				fail("TryWrite(%d) needing %d with %d free: %v", len(p), total, m.cap-(m.tail-m.head), err)
			}
		} else {
			if err != nil {
				fail("TryWrite(%d): %v", len(p), err)
			}
			m.records = append(m.records, record{start: m.tail + pad, payload: p})
			m.tail += total
		}
		if op == 11 { // and drain one
			buf := make([]byte, m.maxRecord)
			n, err := br.ReadInto(cancelled, buf)
			if len(m.records) == m.read {
				if !errors.Is(err, context.Canceled) {
					fail("ReadInto on empty: %v", err)
				}
				return br
			}
			want := m.records[m.read]
			if err != nil || !bytes.Equal(buf[:n], want.payload) {
				fail("ReadInto = %d, %v; want %d bytes", n, err, len(want.payload))
			}
			m.head = want.start + align8(8+uint64(len(want.payload)))
			m.readEnd = m.head
			m.records = m.records[m.read+1:]
			m.read = 0
		}
	}
	return br
}
