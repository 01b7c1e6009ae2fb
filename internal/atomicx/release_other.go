//go:build !amd64 || race

package atomicx

import "sync/atomic"

// StoreRelease64 stores v to *p with (at least) release semantics.
func StoreRelease64(p *uint64, v uint64) { atomic.StoreUint64(p, v) }

// LoadAcquire64 and LoadAcquire32 load *p with (at least) acquire semantics.
func LoadAcquire64(p *uint64) uint64 { return atomic.LoadUint64(p) }
func LoadAcquire32(p *uint32) uint32 { return atomic.LoadUint32(p) }
