//go:build !race

package sync

// raceAcquire and raceRelease annotate happens-before edges for the race
// detector; they compile to nothing without -race.
func raceAcquire(*uint32) {}
func raceRelease(*uint32) {}
