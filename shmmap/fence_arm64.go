package shmmap

import "sync/atomic"

// readFence orders the plain loads a seqlock reader made before it against
// the sequence-count load that follows (SeqCount.Retry). On arm64 a plain
// load may otherwise be satisfied after that load-acquire; a store-release
// (STLR) waits for all earlier loads, and a later load-acquire (LDAR) is
// never reordered before an earlier STLR. The word is on the stack, so the
// store costs no sharing.
func readFence() {
	var w uint32
	atomic.StoreUint32(&w, 1)
}
