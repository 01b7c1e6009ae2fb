// Command kvcache runs worker processes that share one shmmap.Map as a
// cache in front of an expensive function, and count their hits and misses
// in shared atomic counters.
//
//	go run ./examples/kvcache                          # 4 workers, a fresh cache
//	go run ./examples/kvcache -segment posix:/demo-cache -keep
//	go run ./examples/kvcache -segment posix:/demo-cache   # again: starts warm
//
// Each worker looks up keys drawn from a Zipf distribution (a few keys are
// hot, most are rare). On a hit it checks the cached value; on a miss it
// computes the value and stores it with LoadOrStore, so when two workers miss
// the same key at once only the first store wins and the other counts a lost
// race. No process serves the cache: workers read it lock-free (a seqlock per
// shard) and write it under robust per-shard locks, so a worker SIGKILLed in
// the middle of a store cannot wedge or corrupt the others.
//
// The hit/miss counters are a layout.Value holding one cache line of atomics
// per worker (a shared line would make the workers fight over it), in a memfd
// segment passed to the workers as an inherited descriptor.
//
// At the end the parent checks the books: every lookup was a hit or a miss,
// every miss stored the key or lost the race to a worker that did, every
// cached value is right. Exit status 0 when they balance, 1 when not,
// 130/143 when interrupted.
package main

import (
	"flag"
	"fmt"
	"os"
	"sync/atomic"
)

// Key and Entry are the map's key and value types: fixed-size, pointer-free.
type Key struct {
	N uint64
}

type Entry struct {
	Value    uint64 // expensive(N)
	Check    uint64 // check(N, Value): a cheap test that the entry belongs to its key
	Worker   int32  // the worker that computed it
	_        uint32
	Computed int64 // when, Unix nanoseconds
}

// check binds a value to its key, so that a hit can be verified without
// paying for expensive again.
func check(n, v uint64) uint64 {
	x := n*0xff51afd7ed558ccd ^ v
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	return x ^ x>>33
}

// maxWorkers bounds -workers: one counter line each.
const maxWorkers = 64

// workerCounters is one worker's line of counters. Only that worker writes
// it; the parent reads it for progress and the summary.
type workerCounters struct {
	Lookups atomic.Uint64
	Hits    atomic.Uint64
	Misses  atomic.Uint64
	Stored  atomic.Uint64 // misses whose value this worker stored
	Raced   atomic.Uint64 // misses another worker had filled in meanwhile
	Full    atomic.Uint64 // misses that could not be cached: the map was full
	Bad     atomic.Uint64 // hits whose cached value was wrong
	_       [128 - 7*8]byte
}

type counters struct {
	W [maxWorkers]workerCounters
}

// expensive stands for the slow computation the cache saves: rounds of a
// hash chain (about 2 ns each).
func expensive(n uint64, rounds int) uint64 {
	x := n + 0x9e3779b97f4a7c15
	for range rounds {
		x ^= x >> 30
		x *= 0xbf58476d1ce4e5b9
		x ^= x >> 27
	}
	return x
}

type config struct {
	segment  string
	keep     bool
	workers  int
	lookups  int
	keys     uint64
	zipf     float64
	rounds   int
	capacity int
}

func main() {
	var cfg config
	flag.StringVar(&cfg.segment, "segment", "", "segment spec of the cache (default: a fresh posix segment, removed at exit); an existing cache is reused")
	flag.BoolVar(&cfg.keep, "keep", false, "leave the cache segment in place at exit (with -segment)")
	flag.IntVar(&cfg.workers, "workers", 4, fmt.Sprintf("worker processes (1-%d)", maxWorkers))
	flag.IntVar(&cfg.lookups, "lookups", 200_000, "lookups per worker")
	flag.Uint64Var(&cfg.keys, "keys", 20_000, "distinct keys")
	flag.Float64Var(&cfg.zipf, "zipf", 1.1, "Zipf exponent of the key popularity (> 1; higher = hotter hot keys)")
	flag.IntVar(&cfg.rounds, "rounds", 5000, "cost of computing one value, in hash rounds")
	flag.IntVar(&cfg.capacity, "cap", 32_768, "cache capacity in keys when creating it")
	flag.Parse()
	if cfg.workers < 1 || cfg.workers > maxWorkers || cfg.lookups < 0 || cfg.keys < 1 || cfg.zipf <= 1 || cfg.rounds < 0 || cfg.capacity < 1 {
		fmt.Fprintln(os.Stderr, "kvcache: bad flags")
		flag.Usage()
		os.Exit(2)
	}
	if slot := os.Getenv(envWorker); slot != "" {
		os.Exit(workerMain(cfg, slot))
	}
	os.Exit(parentMain(cfg))
}
