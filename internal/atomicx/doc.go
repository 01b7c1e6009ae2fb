// Package atomicx holds the memory-ordering primitives sync/atomic does not
// offer: a release store and acquire loads. On amd64 (TSO) every store is a
// release store and every load an acquire load, so these are plain MOVs; Go's
// atomic.Store emits XCHG, a full barrier that costs as much as a CAS. Use
// them only where no later load may be ordered before the store (no Dekker
// handshake depends on it): releasing a slot or a claim that a peer only
// needs to see eventually, after a locked instruction that already ordered
// everything before it; or where the peer of the handshake supplies the
// missing fence (sync.LightWakes and Notifier.WaitPollFenced). Under -race
// and on other architectures they are sync/atomic's operations, so the
// race detector sees the synchronization and weakly ordered machines get
// (at least) the ordering asked for.
package atomicx
