//go:build race

package shmmap_test

// raceEnabled: the race detector cannot see shared memory (see DESIGN.md),
// so the multi-process soak tests run shorter under it.
const raceEnabled = true
