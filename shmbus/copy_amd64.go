//go:build amd64

package shmbus

// storeSlot writes message seq-1 into an Overwrite slot: invalidate the
// sequence word, copy, publish the sequence word. On amd64 the atomic store
// is an XCHG (a full barrier) and stores are not reordered with each
// other, so plain copies suffice on both sides.
func storeSlot[T any](s *oslot[T], seq uint64, v *T) {
	s.seq.Store(0)
	s.v = *v
	s.seq.Store(seq)
}

// loadSlot copies an Overwrite slot's value; the caller validates the
// sequence word before and after. On amd64 loads are not reordered with
// each other (and the compiler keeps plain loads between the atomic ones).
func loadSlot[T any](s *oslot[T], v *T) {
	*v = s.v
}
