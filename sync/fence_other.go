//go:build !amd64

package sync

import "sync/atomic"

// fence orders every memory access before it against every access after it,
// as seen by other processes, using only sync/atomic (no assembly). On
// arm64 the store compiles to STLR and the load to LDAR, and the ARMv8
// memory model's barrier-ordered-before relation gives, in program order:
//
//	any access before  ->  STLR   (a store-release waits for all earlier
//	                                loads and stores)
//	STLR               ->  LDAR   (a load-acquire after a store-release is
//	                                never satisfied before the store is
//	                                visible: RCsc)
//	LDAR               ->  any access after (load-acquire)
//
// and ordered-before is transitive, so the pair acts as a full barrier
// (DMB ISH) for SeqCount's purposes: the plain data stores a writer makes
// after BeginWrite cannot become visible before the odd count, and the
// plain data loads a reader makes before Retry cannot be satisfied after
// Retry's load of the count. The two words are distinct stack words, so the
// load cannot be forwarded from the store and nothing is shared with
// another core. On other weakly ordered architectures Go implements
// sequentially consistent atomics with full barriers, which is stronger.
func fence() {
	var w [2]uint32
	atomic.StoreUint32(&w[0], 1)
	atomic.LoadUint32(&w[1])
}
