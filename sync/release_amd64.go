//go:build amd64 && !race

package sync

// storeRelease stores v to *p with release semantics. On amd64 (TSO) every
// store is a release store, and the compiler keeps stores after the atomic
// operations that precede them, so a plain MOV suffices; Go's
// atomic.StoreUint64 would emit XCHG, a full barrier costing as much as a
// CAS, on each Lock and Unlock. Under -race the atomic store is used so the
// detector sees the synchronization.
func storeRelease(p *uint64, v uint64) { *p = v }
