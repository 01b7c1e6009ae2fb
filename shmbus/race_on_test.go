//go:build race

package shmbus

// raceEnabled: the race detector slows everything down ~10x; cross-process
// tests size themselves down (full size with SHMKIT_SOAK=1).
const raceEnabled = true
