//go:build !arm64

package shmmap

// readFence orders a seqlock reader's plain loads before its re-check of the
// sequence count. On amd64 (TSO) loads are never reordered with later
// loads, and the compiler keeps loads before an atomic load of the count, so
// nothing is needed. See fence_arm64.go.
func readFence() {}
