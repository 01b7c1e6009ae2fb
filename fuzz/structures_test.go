package fuzz_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/shmmap"
	"github.com/shmkit/shmkit/shmqueue"
	"github.com/shmkit/shmkit/shmring"
)

// Each structure contributes real segments to FuzzHeaderOpen's seed corpus
// and a way to open a fuzzed segment as that structure and use it a little
// (non-blocking calls only). Whatever the bytes, that must fail with a
// sentinel or work without panicking or hanging.

func init() {
	structureSeeders = append(structureSeeders,
		structureSeeder{"ring-item", func(t testing.TB, spec string) error {
			r, err := shmring.Create[item](spec, 4)
			if err != nil {
				return err
			}
			for i := range uint64(3) {
				r.TryPush(mkItem(i))
			}
			r.TryPop()
			return r.Close()
		}},
		structureSeeder{"bytering", func(t testing.TB, spec string) error {
			r, err := shmring.CreateBytes(spec, 128)
			if err != nil {
				return err
			}
			for _, s := range []string{"hello", "", "a record of some length"} {
				_ = r.TryWrite([]byte(s))
			}
			_, _ = r.Read()
			_ = r.Release()
			_ = r.TryWrite([]byte("wraps"))
			return r.Close()
		}},
		structureSeeder{"queue-futex", func(t testing.TB, spec string) error {
			q, err := shmqueue.Create[item](spec, 4, shmqueue.WithMaxHandles(2))
			if err != nil {
				return err
			}
			for i := range uint64(3) {
				_ = q.TryPush(mkItem(i))
			}
			_, _ = q.TryPop()
			return q.Close()
		}},
		structureSeeder{"map-uint16-uint32", func(t testing.TB, spec string) error {
			m, err := shmmap.Create[uint16, uint32](spec, 8, shmmap.WithShards(2), shmmap.WithSeed(7))
			if err != nil {
				return err
			}
			for k := range uint16(5) {
				_ = m.Put(k, uint32(k)*10)
			}
			m.Delete(2)
			return m.Close()
		}},
	)
	structureOpeners = append(structureOpeners,
		structureOpener{"shmring.Open[item]", openRingAndUse[item]},
		structureOpener{"shmring.Open[uint64]", openRingAndUse[uint64]},
		structureOpener{"shmring.OpenBytes", openByteRingAndUse},
		structureOpener{"shmqueue.Open[item]", openQueueAndUse},
		structureOpener{"shmmap.Open[uint16,uint32]", openMapAndUse},
	)
}

// structureErrs are the errors structure calls may add to openSentinels.
var structureErrs = []error{
	layout.ErrClosed, // a queue closed for writes
	layout.ErrRoleTaken, layout.ErrFull, layout.ErrEmpty, layout.ErrOwnerDead,
	layout.ErrNotRecoverable, shmring.ErrCapacity, shmqueue.ErrTooManyHandles,
	shmmap.ErrLockTimeout,
}

func checkErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil && !wrapsSentinel(err, structureErrs...) {
		t.Errorf("%s: error wraps no sentinel: %v", what, err)
	}
}

func openRingAndUse[T any](t *testing.T, spec string) {
	r, err := shmring.Open[T](spec, shmring.WithLayout(layout.WithInitTimeout(openTimeout)))
	if err != nil {
		checkErr(t, "shmring.Open", err)
		return
	}
	defer r.Close()
	if c := r.Cap(); c <= 0 || c&(c-1) != 0 {
		t.Errorf("opened a ring of capacity %d", c)
	}
	if n := r.Len(); n < 0 || n > r.Cap() {
		t.Errorf("Len %d outside [0, %d]", n, r.Cap())
	}
	_, err = r.Stats()
	checkErr(t, "Stats", err)
	s, err := r.Peek(r.Cap() + 1)
	checkErr(t, "Peek", err)
	if len(s) > r.Cap() {
		t.Errorf("Peek returned %d items from a ring of %d", len(s), r.Cap())
	}
	for i := range s {
		_ = s[i]
	}
	checkErr(t, "Advance", r.Advance(len(s)))
	r.TryPop()
	var zero T
	r.TryPush(zero)
	c, err := r.Claim(3)
	checkErr(t, "Claim", err)
	for i := range c {
		c[i] = zero
	}
	checkErr(t, "Publish", r.Publish(len(c)))
	for range 3 {
		r.TryPop()
	}
}

func openByteRingAndUse(t *testing.T, spec string) {
	r, err := shmring.OpenBytes(spec, shmring.WithLayout(layout.WithInitTimeout(openTimeout)))
	if err != nil {
		checkErr(t, "shmring.OpenBytes", err)
		return
	}
	defer r.Close()
	_ = r.Len()
	_, err = r.Stats()
	checkErr(t, "Stats", err)
	for range 8 {
		p, err := r.Read()
		if err != nil {
			checkErr(t, "Read", err)
			break
		}
		if len(p) > r.MaxRecord() {
			t.Errorf("Read returned %d bytes, MaxRecord %d", len(p), r.MaxRecord())
		}
		for i := range p {
			_ = p[i]
		}
	}
	checkErr(t, "Release", r.Release())
	if err := r.TryWrite([]byte("fuzz")); err != nil && !wrapsSentinel(err, append(structureErrs, shmring.ErrTooLarge)...) {
		t.Errorf("TryWrite: %v", err)
	}
	if b, err := r.Reserve(16); err == nil {
		copy(b, "0123456789abcdef")
		checkErr(t, "Commit", r.Commit(len(b)))
	}
}

func openQueueAndUse(t *testing.T, spec string) {
	// A SysV queue names a semaphore set in its header; a fuzzed header
	// could name a set that belongs to someone else on this machine, so
	// only futex queues are used.
	s, err := layout.Open(spec, layout.Expect{Kind: layout.KindQueue, Types: []reflect.Type{reflect.TypeFor[item]()}},
		layout.WithInitTimeout(openTimeout))
	if err != nil {
		return
	}
	futex := s.Header().Params[0] == uint64(shmqueue.BackendFutex)
	_ = s.Close()
	if !futex {
		return
	}
	q, err := shmqueue.Open[item](spec, shmqueue.WithLayout(layout.WithInitTimeout(openTimeout)))
	if err != nil {
		checkErr(t, "shmqueue.Open", err)
		return
	}
	defer q.Close()
	if n := q.Len(); n < 0 || n > q.Cap() {
		// Len is a snapshot of cursors a peer may have scribbled on; it
		// must still be clamped to something meaningful.
		t.Errorf("Len %d outside [0, %d]", n, q.Cap())
	}
	_, err = q.Stats()
	checkErr(t, "Stats", err)
	for range 3 {
		_, err := q.TryPop()
		checkErr(t, "TryPop", err)
	}
	checkErr(t, "TryPush", q.TryPush(mkItem(1)))
	buf := make([]item, 4)
	_, err = q.TryPopBatch(buf)
	checkErr(t, "TryPopBatch", err)
}

func openMapAndUse(t *testing.T, spec string) {
	// A fuzzed lock word may name a live thread that holds nothing: the
	// lock timeout bounds the wait (testdata/fuzz/FuzzHeaderOpen/map-lock-*
	// once made Open, Check and Put wait 10s and fail without a sentinel).
	m, err := shmmap.Open[uint16, uint32](spec, shmmap.WithLayout(layout.WithInitTimeout(openTimeout)),
		shmmap.WithLockTimeout(50*time.Millisecond))
	if err != nil {
		checkErr(t, "shmmap.Open", err)
		return
	}
	defer m.Close()
	_ = m.Len()
	for k := range uint16(6) {
		_, _, err := m.Load(k)
		checkErr(t, "Load", err)
	}
	n := 0
	for range m.All() {
		if n++; n > 1<<16 {
			t.Errorf("All yielded more than %d entries", 1<<16)
			break
		}
	}
	checkErr(t, "Check", m.Check())
	checkErr(t, "Put", m.Put(1, 2))
	m.Delete(3)
}
