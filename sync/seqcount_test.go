package sync_test

import (
	"errors"
	"sync/atomic"
	"testing"

	shsync "github.com/shmkit/shmkit/sync"
)

// readAB reads the pair under the seqlock: A and B are always equal when
// read consistently.
func readAB(s *shared) (a, b uint64, ok bool) {
	for range 1000 {
		st := s.Seq.BeginRead()
		a, b = atomic.LoadUint64(&s.A), atomic.LoadUint64(&s.B)
		if !s.Seq.Retry(st) {
			return a, b, true
		}
	}
	return a, b, false
}

func TestSeqCount(t *testing.T) {
	_, s := newShared(t)
	const writes = 20000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range writes {
			_ = s.Mu.Lock()
			s.Seq.BeginWrite()
			atomic.AddUint64(&s.A, 1)
			atomic.AddUint64(&s.B, 1)
			s.Seq.EndWrite()
			s.Mu.Unlock()
		}
	}()
	reads := 0
	for {
		select {
		case <-done:
			if a, b, ok := readAB(s); !ok || a != writes || b != writes {
				t.Fatalf("final read %d %d %v", a, b, ok)
			}
			t.Logf("%d consistent reads during %d writes", reads, writes)
			return
		default:
		}
		if a, b, ok := readAB(s); ok {
			if a != b {
				t.Fatalf("torn read accepted: A=%d B=%d", a, b)
			}
			reads++
		}
	}
}

// A writer killed mid-write leaves the count odd: readers do not hang, they
// keep retrying; the next writer's Lock reports ErrOwnerDead and its
// BeginWrite/EndWrite repair the count.
func TestSeqCountWriterDied(t *testing.T) {
	spec, s := newShared(t)
	p := seqWriterChild.Start(t, spec)
	awaitFlag(t, p, &s.Note, &s.Flag, 1)
	p.Kill()
	if !s.Seq.Writing() {
		t.Fatal("count not odd after a writer died mid-write")
	}
	if _, _, ok := readAB(s); ok {
		t.Fatal("reader accepted data from a dead writer's half-done write")
	}
	if err := s.Mu.Lock(); !errors.Is(err, shsync.ErrOwnerDead) {
		t.Fatalf("writer Lock = %v, want ErrOwnerDead", err)
	}
	s.Seq.BeginWrite()
	if !s.Seq.Writing() {
		t.Fatal("BeginWrite made an odd count even")
	}
	atomic.StoreUint64(&s.B, atomic.LoadUint64(&s.A)) // repair
	s.Seq.EndWrite()
	if err := s.Mu.MarkConsistent(); err != nil {
		t.Fatal(err)
	}
	s.Mu.Unlock()
	if a, b, ok := readAB(s); !ok || a != b || a != 1 {
		t.Fatalf("after repair: %d %d %v", a, b, ok)
	}
}

// The count is 64 bits: a reader stopped between BeginRead and Retry while
// 2^31 writes happen (which brought a 32-bit count back to the reader's
// start value) still sees that its copy may be torn.
func TestSeqCountNoWrap(t *testing.T) {
	_, s := newShared(t)
	start := s.Seq.BeginRead()
	if start != 0 {
		t.Fatalf("fresh count %d", start)
	}
	shsync.SetSeqCount(&s.Seq, 1<<32) // 2^31 BeginWrite/EndWrite pairs later
	if !s.Seq.Retry(start) {
		t.Fatal("Retry accepted a read spanning 2^31 writes")
	}
	s.Seq.BeginWrite()
	s.Seq.EndWrite()
	if st := s.Seq.BeginRead(); st != 1<<32+2 || s.Seq.Retry(st) {
		t.Fatalf("after one more write: count %d", st)
	}
}

// BeginReadNow is BeginRead's count without the wait: equal to it when no
// write is in progress, odd while one is.
func TestSeqCountBeginReadNow(t *testing.T) {
	var c shsync.SeqCount
	for range 3 {
		if now, br := c.BeginReadNow(), c.BeginRead(); now != br || now&1 != 0 {
			t.Fatalf("BeginReadNow %d, BeginRead %d", now, br)
		}
		c.BeginWrite()
		if c.BeginReadNow()&1 != 1 || !c.Writing() {
			t.Fatalf("count %d during a write", c.BeginReadNow())
		}
		c.EndWrite()
	}
	if got := c.BeginReadNow(); got != 6 {
		t.Fatalf("count %d after 3 writes, want 6", got)
	}
}
