// Package fuzz holds shmkit's fuzz targets and hostile-peer tests. It has no
// API: everything is in _test.go files. Nothing in shmkit trusts the bytes of
// a segment, and this package is where that claim is attacked.
//
// # Fuzz targets
//
//   - FuzzHeaderOpen: arbitrary bytes become a real segment (a file:
//     segment), opened with layout.Open (any kind),
//     layout.OpenValue of three types, and as every structure (ring, byte
//     ring, futex queue, map), each then used a little with non-blocking
//     calls. Each must fail with an error wrapping a layout sentinel or
//     succeed with regions inside the mapping; never panic, fault or hang.
//     Every input is tried twice: as is, and with the type fingerprints and
//     header checksum recomputed, so mutations reach the checks that sit
//     behind the checksum. Seeds: real segments made by CreateValue, Create
//     and each structure's Create, truncations, a dead creator, a future
//     format version (testdata/fuzz/FuzzHeaderOpen, refreshed with
//     SHMKIT_WRITE_SEEDS=1 go test -run TestWriteHeaderSeeds ./fuzz).
//   - FuzzTypeRules: struct shapes built with reflect.StructOf from the
//     input. layout.Describe must accept exactly the pointer-free fixed-size
//     shapes (checked against an independent predicate), name the first
//     offending field in its TypeError, and give equal fingerprints exactly
//     when two shapes have equal canonical layouts.
//   - FuzzRingOps, FuzzByteRingOps, FuzzQueueOps: op sequences decoded from
//     the input run against the real structure over a real segment and a
//     plain Go model, compared after every op (values, lengths, when it is
//     full or empty, where byte-ring padding goes, usage errors, reopening).
//     The map's equivalent, FuzzMapOps, lives in package shmmap.
//
// Run one target locally for five minutes (one target per run, that is how
// go test -fuzz works):
//
//	go test -run '^$' -fuzz '^FuzzHeaderOpen$' -fuzztime 5m -fuzzminimizetime 10s ./fuzz
//
// or every target in the module, one after the other:
//
//	FUZZTIME=5m .ci/fuzz.sh
//
// CI runs .ci/fuzz.sh with FUZZTIME=5s: it finds the packages with fuzz
// functions, lists their targets with go test -list '^Fuzz', and runs each
// with -fuzz '^Name$' -fuzztime $FUZZTIME, failing if any fails. A failing
// input is saved by Go under <package>/testdata/fuzz/<Target>/; commit it:
// from then on plain go test replays it as a regression test. The default
// minimization budget (a minute per new input) would eat short runs, so the
// script passes -fuzzminimizetime (FUZZMINIMIZETIME, default 5s).
//
// Fuzz workers are separate processes running in parallel, and the engine
// SIGKILLs a worker that overruns its minimization budget, so cleanups do
// not always run. Every segment a target makes is therefore a file under
// $TMPDIR/shmkit-fuzz/<pid>-<start>/ and every SysV semaphore set has the
// key 0x5f<<24|pid; each worker first removes what dead workers left. Nothing
// goes to /dev/shm.
//
// Found bugs. When a target finds a bug in another package, its failing
// input is committed under testdata/fuzz/<Target>/ with a descriptive name
// and fails plain go test until the bug is fixed, then stays as a
// regression seed (readinto-short-buffer-after-reopen,
// sysv-push-done-context, map-lock-names-live-thread). No known bug is
// steered around: every committed crasher passes.
//
// # Hostile peers
//
// TestHostile* run a reader (layout attach, ring consumer, byte-ring
// reader, queue consumer, map Get/Load/All) while a child process maps the
// same segment and writes garbage into it in a tight loop: random bytes and
// words, edge values (0, 1, capacity, 2^63, ...), cursors nudged by a few,
// aimed at the header, the first lines of every region (cursors, sequence
// words, lock words) and anywhere in the regions, interleaved with healing
// writes that restore the original bytes so the reader gets deep. A live
// producer or writer runs beside the reader. Every reader op gets a 50ms
// context deadline; the test fails on a panic or fault (SetPanicOnFault
// turns a wild access into a reported panic), an op overrunning its
// deadline by more than a second, an error wrapping no shmkit sentinel, or
// the reader not finishing its ops within a minute. Each run logs its seed;
// SHMKIT_HOSTILE_SEED=<seed> replays the scribbler's choices (timing still
// differs). SHMKIT_SOAK=1 runs fifty times as many ops. Run them under -race:
//
//	go test -race -run Hostile -v ./fuzz
package fuzz
