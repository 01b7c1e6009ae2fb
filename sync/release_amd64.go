//go:build amd64 && !race

package sync

// storeRelease stores v to *p with release semantics. On amd64 (TSO) every
// store is a release store, and the compiler keeps stores after the atomic
// operations that precede them, so a plain MOV suffices; Go's
// atomic.StoreUint64 would emit XCHG, a full barrier costing as much as a
// CAS, on each Lock and Unlock. Under -race the atomic store is used so the
// detector sees the synchronization.
func storeRelease(p *uint64, v uint64) { *p = v }

// loadAcquire64 and loadAcquire32 load *p with acquire semantics: on amd64
// every load is an acquire load. A plain load (not sync/atomic's, which is
// the same MOV) lets the compiler fold the address arithmetic into the
// instruction; on the Mutex fast paths that arithmetic is on the path to
// the CAS or XCHG. Under -race the atomic loads are used.
func loadAcquire64(p *uint64) uint64 { return *p }
func loadAcquire32(p *uint32) uint32 { return *p }
