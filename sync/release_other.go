//go:build !amd64 || race

package sync

import "sync/atomic"

// storeRelease stores v to *p with (at least) release semantics.
func storeRelease(p *uint64, v uint64) { atomic.StoreUint64(p, v) }

// loadAcquire64 and loadAcquire32 load *p with (at least) acquire semantics.
func loadAcquire64(p *uint64) uint64 { return atomic.LoadUint64(p) }
func loadAcquire32(p *uint32) uint32 { return atomic.LoadUint32(p) }
