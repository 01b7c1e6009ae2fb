//go:build !race

// Package racemode tells code and tests whether the race detector is on.
//
// Tests need it in two places: the detector cannot see shared memory, so
// multi-process soaks run shorter under it; and under it an atomic
// operation on a mapping runs in the detector's C code on the system stack,
// where a memory fault (a peer truncating the segment at that very moment)
// cannot become a recoverable panic, so truncation tests let the truncation
// finish before they touch the segment again.
package racemode

// Enabled reports whether the binary was built with -race.
const Enabled = false
