//go:build !race

package sync

// raceAcquire and raceRelease annotate happens-before edges for the race
// detector; they compile to nothing without -race.
func raceAcquire(*uint32) {}
func raceRelease(*uint32) {}

// dekkerFence orders the caller's earlier atomic store before its next
// atomic load (see Notifier). Go's atomic stores are sequentially
// consistent (XCHG on amd64, STLR before LDAR on arm64), so nothing is
// needed without -race; a caller that published with a release store
// instead relies on the waiter's barrier (lightwake.go).
func dekkerFence() {}
