//go:build amd64 && !race

package atomicx

// StoreRelease64 stores v to *p with release semantics: a plain MOV (the
// compiler keeps stores after the atomic operations that precede them).
func StoreRelease64(p *uint64, v uint64) { *p = v }

// LoadAcquire64 and LoadAcquire32 load *p with acquire semantics. A plain
// load (not sync/atomic's, which is the same MOV) lets the compiler fold the
// address arithmetic into the instruction.
func LoadAcquire64(p *uint64) uint64 { return *p }
func LoadAcquire32(p *uint32) uint32 { return *p }
