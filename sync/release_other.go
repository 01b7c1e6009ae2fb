//go:build !amd64 || race

package sync

import "sync/atomic"

// storeRelease stores v to *p with (at least) release semantics.
func storeRelease(p *uint64, v uint64) { atomic.StoreUint64(p, v) }
