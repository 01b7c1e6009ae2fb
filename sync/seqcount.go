package sync

import (
	"runtime"
	"sync/atomic"
)

// seqReadSpin bounds how long BeginRead waits for an in-progress write.
const seqReadSpin = 128

// SeqCount is a sequence counter for seqlock-style lock-free readers of
// data that writers (serialized by a Mutex) update in place. The zero value
// is ready. 8 bytes, 8-byte aligned: the count is 64 bits wide, so it cannot
// wrap back to a reader's start value (2^63 writes at one per nanosecond
// take 292 years), however long the reader is stopped between BeginRead
// and Retry.
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
// Memory ordering. Data may be written and copied with plain stores and
// loads; the three points below make the protocol hold on weakly ordered
// hardware (arm64) as well as on amd64, against readers in other
// processes:
//
//   - BeginWrite makes the count odd with an atomic read-modify-write and
//     then calls fence. The read-modify-write alone is not enough on arm64
//     without LSE atomics (ARMv8.0): it compiles to an LDAXR/STLXR loop,
//     and a store-release only orders accesses before it, so a later plain
//     data store could become visible before the odd count and a reader
//     could accept a torn copy. fence (STLR then LDAR on arm64) orders the
//     odd count before every later store, like smp_wmb() in the Linux
//     kernel's write_seqcount_begin.
//   - EndWrite makes the count even with a store-release (an atomic store),
//     which orders every data store before it.
//   - BeginRead loads the count with a load-acquire, which orders the data
//     loads after it; Retry calls fence before reloading the count, which
//     orders the data loads before that reload (smp_rmb() in
//     read_seqcount_retry).
//
// On amd64 fence is empty: the locked read-modify-write is a full barrier
// and TSO keeps loads and stores in program order.
//
// A writer killed mid-write leaves the count odd: readers would retry
// forever. BeginRead therefore spins only a bounded time and then returns
// the odd value, for which Retry always reports true, so a reader can count
// its retries and, after a few, fall back to taking the writer Mutex. That
// Lock returns ErrOwnerDead; the new writer repairs the data, calls
// BeginWrite (which keeps an odd count odd) ... EndWrite (which makes it
// even again), then MarkConsistent and Unlock. Writing reports an odd count.
type SeqCount struct {
	seq uint64
}

// BeginRead returns the count to pass to Retry, waiting briefly (yielding)
// while a write is in progress. If the write does not finish it returns the
// odd count anyway; Retry then reports true.
func (c *SeqCount) BeginRead() uint64 {
	for i := 0; ; i++ {
		s := c.BeginReadNow()
		if s&1 == 0 || i >= seqReadSpin {
			return s
		}
		runtime.Gosched()
	}
}

// BeginReadNow is BeginRead without the wait: the count as it is now, odd
// while a write is in progress (Retry then reports true). It is small
// enough to inline, for a reader's first optimistic attempt on a hot path
// (BeginRead's wait loop keeps BeginRead itself from being inlined).
func (c *SeqCount) BeginReadNow() uint64 { return atomic.LoadUint64(&c.seq) }

// Retry reports whether data read since BeginRead returned start may be
// inconsistent (a write was in progress or happened since). It orders the
// reader's loads of the data before its reload of the count.
func (c *SeqCount) Retry(start uint64) bool {
	fence()
	return start&1 != 0 || atomic.LoadUint64(&c.seq) != start
}

// Writing reports whether a write is in progress, or a writer died in one.
func (c *SeqCount) Writing() bool { return atomic.LoadUint64(&c.seq)&1 != 0 }

// BeginWrite marks the start of a write. Writers must be serialized (hold
// the writer Mutex). An odd count left by a dead writer stays odd. No store
// after BeginWrite becomes visible before the odd count.
func (c *SeqCount) BeginWrite() {
	atomic.OrUint64(&c.seq, 1)
	fence()
}

// EndWrite marks the end of a write, making the count even (and different
// from any count a reader could have started from during the write).
func (c *SeqCount) EndWrite() {
	s := atomic.LoadUint64(&c.seq)
	atomic.StoreUint64(&c.seq, (s|1)+1)
}
