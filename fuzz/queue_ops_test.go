package fuzz_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/shmqueue"
)

// queueModel is the plain Go model of a Queue: a FIFO with a capacity and
// a closed-for-writes flag, shared by every handle.
type queueModel struct {
	cap          int
	items        []item
	closed       bool
	pushes, pops uint64
	next         uint64
	sysv         bool
	trace        []string
}

func (m *queueModel) free() int { return m.cap - len(m.items) }

func (m *queueModel) make(n int) []item {
	vs := make([]item, n)
	for i := range vs {
		vs[i] = mkItem(m.next + uint64(i))
	}
	return vs
}

// FuzzQueueOps drives a real Queue, through up to three handles of one
// process (each its own member record), and queueModel with the same op
// sequence, comparing every result. A quarter of the inputs use the SysV
// backend.
func FuzzQueueOps(f *testing.F) {
	f.Add([]byte{2, 0, 0, 0, 0, 2, 0, 8, 0})
	f.Add([]byte{0x13, 4, 0, 9, 5, 1, 4, 1, 3, 12, 1, 2, 0, 8, 1})
	f.Add([]byte{0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 7, 0, 4, 3, 2, 0, 3, 0, 8, 0})
	f.Add([]byte{0x07, 9, 0, 9, 0, 4, 1, 20, 5, 2, 20, 6, 0, 3, 10, 1, 13, 2, 8, 2, 11, 0})
	dir := fuzzWorkerDir(f)
	semKey := fuzzWorkerSemKey(f)
	var n int
	f.Fuzz(func(t *testing.T, in []byte) {
		r := &byteReader{b: in}
		n++
		spec := "file:" + filepath.Join(dir, fmt.Sprintf("queue-%d", n))
		b := r.next()
		m := &queueModel{cap: 1, sysv: (b>>4)%4 == 0}
		for m.cap < max(2, 1+int(b%9)) {
			m.cap *= 2
		}
		backend, opts := shmqueue.BackendFutex, []shmqueue.Option(nil)
		if m.sysv {
			// The set is named after this worker, so that a worker killed
			// mid-input leaves nothing the next one does not sweep.
			backend, opts = shmqueue.BackendSysV, []shmqueue.Option{shmqueue.WithSysVKey(semKey)}
		}
		q, err := shmqueue.Create[item](spec, 1+int(b%9), append(opts, shmqueue.WithBackend(backend))...)
		if err != nil {
			t.Fatal(err)
		}
		handles := []*shmqueue.Queue[item]{q}
		t.Cleanup(func() {
			for _, h := range handles {
				_ = h.Close()
			}
			if err := shmqueue.Remove(spec); err != nil {
				t.Errorf("Remove: %v", err)
			}
		})
		if q.Cap() != m.cap || q.Backend() != backend {
			t.Fatalf("Cap %d backend %v, want %d %v", q.Cap(), q.Backend(), m.cap, backend)
		}
		for step := 0; r.i < len(r.b) && step < 300; step++ {
			handles = queueStep(t, step, r, handles, spec, m)
		}
	})
}

func queueStep(t *testing.T, step int, r *byteReader, handles []*shmqueue.Queue[item], spec string, m *queueModel) []*shmqueue.Queue[item] {
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("step %d: %s (model: cap %d len %d closed %v sysv %v handles %d)\nops: %v",
			step, fmt.Sprintf(format, args...), m.cap, len(m.items), m.closed, m.sysv, len(handles), m.trace)
	}
	op := r.next() % 14
	hi := int(r.next()) % len(handles)
	q := handles[hi]
	m.trace = append(m.trace, fmt.Sprintf("%d@%d", op, hi))
	// wantPop is what a pop must report when the queue has no item.
	emptyErr := func(blocking bool) error {
		switch {
		case m.closed:
			return shmqueue.ErrClosed
		case blocking:
			return context.Canceled
		}
		return shmqueue.ErrEmpty
	}
	pushErr := func(blocking bool) error {
		switch {
		case m.closed:
			return shmqueue.ErrClosed
		case m.free() > 0:
			return nil
		case blocking:
			return context.Canceled
		}
		return shmqueue.ErrFull
	}
	push := func(blocking bool) {
		v := mkItem(m.next)
		var err error
		if blocking {
			err = q.Push(cancelled, v)
		} else {
			err = q.TryPush(v)
		}
		want := pushErr(blocking)
		if (want == nil) != (err == nil) || (want != nil && !errors.Is(err, want)) {
			fail("push: %v, want %v", err, want)
		}
		if err == nil {
			m.items = append(m.items, v)
			m.next++
			m.pushes++
		}
	}
	pop := func(blocking bool) {
		var v item
		var err error
		if blocking {
			v, err = q.Pop(cancelled)
		} else {
			v, err = q.TryPop()
		}
		if len(m.items) == 0 {
			if want := emptyErr(blocking); !errors.Is(err, want) {
				fail("pop of an empty queue: %v, %v; want %v", v, err, want)
			}
			return
		}
		if err != nil || v != m.items[0] {
			fail("pop = %v, %v; want %v", v, err, m.items[0])
		}
		m.items = m.items[1:]
		m.pops++
	}
	popBatch := func(blocking bool) {
		buf := make([]item, int(r.next())%(2*m.cap+1))
		var n int
		var err error
		if blocking {
			n, err = q.PopBatch(cancelled, buf)
		} else {
			n, err = q.TryPopBatch(buf)
		}
		m.trace[len(m.trace)-1] += fmt.Sprintf("(%d)", len(buf))
		switch {
		case len(buf) == 0:
			if n != 0 {
				fail("pop batch into an empty buffer = %d, %v", n, err)
			}
		case len(m.items) == 0:
			if want := emptyErr(blocking); n != 0 || !errors.Is(err, want) {
				fail("pop batch of an empty queue = %d, %v; want 0, %v", n, err, want)
			}
		default:
			most := min(len(buf), len(m.items))
			if err != nil || n < 1 || n > most {
				fail("pop batch(%d) = %d, %v; want 1..%d", len(buf), n, err, most)
			}
			if !slices.Equal(buf[:n], m.items[:n]) {
				fail("pop batch = %v, want %v", buf[:n], m.items[:n])
			}
			m.items = m.items[n:]
			m.pops += uint64(n)
		}
	}
	switch op {
	case 0:
		push(false)
	case 1:
		push(true)
	case 2:
		pop(false)
	case 3:
		pop(true)
	case 4: // PushBatch with a done context
		vs := m.make(int(r.next()) % (2*m.cap + 1))
		n, err := q.PushBatch(cancelled, vs)
		m.trace[len(m.trace)-1] += fmt.Sprintf("(%d)", len(vs))
		switch {
		case len(vs) == 0:
			if n != 0 {
				fail("PushBatch of nothing = %d, %v", n, err)
			}
		case m.closed:
			if n != 0 || !errors.Is(err, shmqueue.ErrClosed) {
				fail("PushBatch after CloseWrites = %d, %v", n, err)
			}
		default:
			want := min(len(vs), m.free())
			if n != want || (n == len(vs)) != (err == nil) || (err != nil && !errors.Is(err, context.Canceled)) {
				fail("PushBatch(%d) with %d free = %d, %v; want %d", len(vs), m.free(), n, err, want)
			}
			m.items = append(m.items, vs[:n]...)
			m.next += uint64(n)
			m.pushes += uint64(n)
		}
	case 5:
		popBatch(true)
	case 6:
		popBatch(false)
	case 7: // CloseWrites, rarely: it ends all pushing
		if r.next()%4 != 0 {
			return handles
		}
		if err := q.CloseWrites(); err != nil {
			fail("CloseWrites: %v", err)
		}
		m.closed = true
	case 8: // Len and Stats, from any handle
		if q.Len() != len(m.items) {
			fail("Len %d, want %d", q.Len(), len(m.items))
		}
		st, err := q.Stats()
		if err != nil {
			fail("Stats: %v", err)
		}
		if st.Cap != m.cap || st.Len != len(m.items) || st.Pushes != m.pushes || st.Pops != m.pops || st.Closed != m.closed ||
			st.HolesSkipped != 0 || st.SlotsReclaimed != 0 {
			fail("Stats %+v; want pushes %d pops %d", st, m.pushes, m.pops)
		}
		if !m.sysv && st.Handles != len(handles) {
			fail("Stats.Handles %d, want %d", st.Handles, len(handles))
		}
	case 9: // attach another handle
		if len(handles) < 3 {
			h, err := shmqueue.Open[item](spec)
			if err != nil {
				fail("Open: %v", err)
			}
			handles = append(handles, h)
		}
	case 10: // detach a handle (keeping one); the queue is unaffected
		if len(handles) > 1 {
			if err := q.Close(); err != nil {
				fail("Close: %v", err)
			}
			if _, err := q.TryPop(); !errors.Is(err, shmqueue.ErrClosed) {
				fail("TryPop on a closed handle: %v, want ErrClosed", err)
			}
			handles = slices.Delete(handles, hi, hi+1)
		}
	case 11: // the segment refuses another element type
		if _, err := shmqueue.Open[uint64](spec); !errors.Is(err, layout.ErrTypeMismatch) {
			fail("Open[uint64] of a queue of item: %v, want ErrTypeMismatch", err)
		}
	case 12, 13: // traffic
		push(false)
		if op == 13 {
			pop(false)
		}
	}
	return handles
}
