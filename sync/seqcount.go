package sync

import (
	"runtime"
	"sync/atomic"
)

// seqReadSpin bounds how long BeginRead waits for an in-progress write.
const seqReadSpin = 128

// SeqCount is a sequence counter for seqlock-style lock-free readers of
// data that writers (serialized by a Mutex) update in place. The zero value
// is ready. 4 bytes.
//
// Reader:
//
//	for {
//		s := sc.BeginRead()
//		v := copyOfData() // may be torn; do not act on it yet
//		if !sc.Retry(s) {
//			return v
//		}
//	}
//
// Writer (holding the writer Mutex): BeginWrite(); update; EndWrite().
//
// Memory ordering: BeginWrite is an atomic read-modify-write (a full
// barrier on amd64 and arm64), so data stores cannot become visible before
// the count turns odd. On amd64 (TSO) readers may copy data with plain
// loads. On arm64 a plain load may be satisfied after Retry's load of the
// count, so readers there must read the data with sync/atomic loads.
//
// A writer killed mid-write leaves the count odd: readers would retry
// forever. BeginRead therefore spins only a bounded time and then returns
// the odd value, for which Retry always reports true, so a reader can count
// its retries and, after a few, fall back to taking the writer Mutex. That
// Lock returns ErrOwnerDead; the new writer repairs the data, calls
// BeginWrite (which keeps an odd count odd) ... EndWrite (which makes it
// even again), then MarkConsistent and Unlock. Writing reports an odd count.
type SeqCount struct {
	seq uint32
}

// BeginRead returns the count to pass to Retry, waiting briefly (yielding)
// while a write is in progress. If the write does not finish it returns the
// odd count anyway; Retry then reports true.
func (c *SeqCount) BeginRead() uint32 {
	for i := 0; ; i++ {
		s := atomic.LoadUint32(&c.seq)
		if s&1 == 0 || i >= seqReadSpin {
			return s
		}
		runtime.Gosched()
	}
}

// Retry reports whether data read since BeginRead returned start may be
// inconsistent (a write was in progress or happened since).
func (c *SeqCount) Retry(start uint32) bool {
	return start&1 != 0 || atomic.LoadUint32(&c.seq) != start
}

// Writing reports whether a write is in progress, or a writer died in one.
func (c *SeqCount) Writing() bool { return atomic.LoadUint32(&c.seq)&1 != 0 }

// BeginWrite marks the start of a write. Writers must be serialized (hold
// the writer Mutex). An odd count left by a dead writer stays odd.
func (c *SeqCount) BeginWrite() {
	for {
		s := atomic.LoadUint32(&c.seq)
		if atomic.CompareAndSwapUint32(&c.seq, s, s|1) {
			return
		}
	}
}

// EndWrite marks the end of a write, making the count even (and different
// from any count a reader could have started from during the write).
func (c *SeqCount) EndWrite() {
	s := atomic.LoadUint32(&c.seq)
	atomic.StoreUint32(&c.seq, (s|1)+1)
}
