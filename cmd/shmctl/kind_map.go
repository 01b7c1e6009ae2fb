package main

// Maps. shmmap exposes Stats (length, probe lengths, per-shard writer lock
// state with dead owners, pending redo records) only on a typed
// *Map[K, V], and its shard control block is an unexported type, so shmctl
// cannot read the live state of a map whose key and value types it does not
// know: it shows the header only. What it needs from shmmap is a
// non-generic
//
//	func Inspect(s *layout.Segment) (Stats, error)
//
// (like shmring.Inspect; the per-slot Meta word and the slot size from the
// header are all the length and probe statistics need), and for doctor
// --fix a non-generic entry point that locks each shard once, running the
// package's own dead-writer repair (redo replay) where the lock reports
// ErrOwnerDead.
