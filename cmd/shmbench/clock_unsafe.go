package main

import _ "unsafe" // go:linkname

// nanotime is the runtime's CLOCK_MONOTONIC reading in nanoseconds (vDSO,
// no system call). Unlike time.Now's monotonic reading, which counts from
// the process's start, it is one clock for every process on the machine,
// so a publisher can stamp a message and a subscriber in another process
// can subtract.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64
