package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/shmmap"
	shmsync "github.com/shmkit/shmkit/sync"
)

// Map and mutex rows: 1 or 2 worker processes run their share of the
// operations after a common start signal; the parent times from the start
// to the last worker's report.

// mapKeys is the number of keys: 64-byte values, so about 20 MiB of
// entries in a full run (beyond most last-level caches), less in -quick.
func mapKeys(cfg runConfig) int {
	if cfg.quick {
		return 1 << 14
	}
	return 1 << 18
}

// mapKeysLarge is the key count of the "1M" rows (the issue tracker's
// measure, set beside a Go map of the same keys): 1 Mi keys, about 120 MiB
// of shmkit entries; 64 Ki in -quick.
func mapKeysLarge(cfg runConfig) int {
	if cfg.quick {
		return 1 << 16
	}
	return 1 << 20
}

func mapKey(i int) uint64 { return uint64(i)*0x9e3779b97f4a7c15 + 1 }

// mapOrder is a random order of the keys, different for each worker.
func mapOrder(keys, worker int) []uint64 {
	r := rand.New(rand.NewPCG(uint64(worker)+1, 7))
	out := make([]uint64, keys)
	for i, j := range r.Perm(keys) {
		out[i] = mapKey(j)
	}
	return out
}

// runMapOps runs n operations of kind op: get, put, or mixed (90% get,
// 10% put).
func runMapOps(m *shmmap.Map[uint64, item64], op string, order []uint64, n int) error {
	mask := len(order) - 1 // len is a power of two
	for i := range n {
		k := order[i&mask]
		put := op == "put" || (op == "mixed" && i%10 == 0)
		if put {
			if err := m.Put(k, item64{Seq: uint64(i)}); err != nil {
				return err
			}
			continue
		}
		if _, ok := m.Get(k); !ok {
			return fmt.Errorf("key %#x missing", k)
		}
	}
	return nil
}

// args: op keys n worker
var _ = registerPeer("shmbench-map", func(w member, a []string) error {
	op, keys, n, worker := a[0], atoi(a[1]), atoi(a[2]), atoi(a[3])
	m, err := shmmap.Open[uint64, item64](w.fdSpec(0), shmmap.WithPopulate())
	if err != nil {
		return err
	}
	defer m.Close()
	order := mapOrder(keys, worker)
	if err := w.ready(); err != nil {
		return err
	}
	if err := runMapOps(m, op, order, n); err != nil {
		return err
	}
	return w.report(tagDone, uint64(n))
})

func mapBench(op string, procs int, keysFor func(runConfig) int) func(runConfig, int) (outcome, error) {
	return func(cfg runConfig, n int) (outcome, error) {
		keys := keysFor(cfg)
		m, err := shmmap.Create[uint64, item64]("memfd:"+uniqueName("map"), keys, shmmap.WithPopulate())
		if err != nil {
			return outcome{}, err
		}
		defer m.Close()
		for i := range keys { // fill outside the clock
			if err := m.Put(mapKey(i), item64{Seq: uint64(i)}); err != nil {
				return outcome{}, fmt.Errorf("fill: %w", err)
			}
		}
		var args [][]string
		for w := range procs {
			share := n / procs
			if w == 0 {
				share += n % procs
			}
			args = append(args, []string{op, itoa(keys), itoa(share), itoa(w)})
		}
		return runWorkers(cfg, "shmbench-map", []*os.File{m.Segment().Raw().File()}, args, uint64(n))
	}
}

// runWorkers starts one worker per args, starts them together, and times
// until the last reports done; the reported counts must add up to total.
func runWorkers(cfg runConfig, role string, files []*os.File, args [][]string, total uint64) (outcome, error) {
	t, start, err := launchTeam(cfg, role, files, args...)
	if err != nil {
		return outcome{}, err
	}
	done, err := t.expect(tagDone, len(args))
	if err != nil {
		return outcome{}, t.fail(err)
	}
	elapsed := time.Since(start)
	if err := t.wait(); err != nil {
		return outcome{}, err
	}
	if done != total {
		return outcome{}, fmt.Errorf("workers did %d operations, want %d", done, total)
	}
	return outcome{elapsed: elapsed}, nil
}

// goMapMixed is the in-process bound for the map rows: a Go map behind a
// sync.RWMutex, shared by goroutines (no sharing across processes, no
// crash safety).
func goMapMixed(goroutines int) func(runConfig, int) (outcome, error) {
	return func(cfg runConfig, n int) (outcome, error) {
		keys := mapKeys(cfg)
		var mu sync.RWMutex
		gm := make(map[uint64]item64, keys)
		for i := range keys {
			gm[mapKey(i)] = item64{Seq: uint64(i)}
		}
		orders := make([][]uint64, goroutines)
		for w := range orders {
			orders[w] = mapOrder(keys, w)
		}
		var wg sync.WaitGroup
		var missing error
		var missingOnce sync.Once
		start := time.Now()
		for w := range goroutines {
			share := n / goroutines
			if w == 0 {
				share += n % goroutines
			}
			wg.Go(func() {
				order, mask := orders[w], keys-1
				for i := range share {
					k := order[i&mask]
					if i%10 == 0 {
						mu.Lock()
						gm[k] = item64{Seq: uint64(i)}
						mu.Unlock()
						continue
					}
					mu.RLock()
					_, ok := gm[k]
					mu.RUnlock()
					if !ok {
						missingOnce.Do(func() { missing = fmt.Errorf("key %#x missing", k) })
					}
				}
			})
		}
		wg.Wait()
		return outcome{elapsed: time.Since(start)}, missing
	}
}

// goMapOps is the in-process anchor of the 1M rows: the same keys, values
// and random order in a plain Go map in this process, one goroutine (no
// sharing across processes, no crash safety, no concurrent readers).
func goMapOps(op string, keysFor func(runConfig) int) func(runConfig, int) (outcome, error) {
	return func(cfg runConfig, n int) (outcome, error) {
		keys := keysFor(cfg)
		gm := make(map[uint64]item64, keys)
		for i := range keys {
			gm[mapKey(i)] = item64{Seq: uint64(i)}
		}
		order, mask := mapOrder(keys, 0), keys-1
		var sum uint64
		start := time.Now()
		for i := range n {
			k := order[i&mask]
			if op == "put" {
				gm[k] = item64{Seq: uint64(i)}
				continue
			}
			v, ok := gm[k]
			if !ok {
				return outcome{}, fmt.Errorf("key %#x missing", k)
			}
			sum += v.Seq
		}
		elapsed := time.Since(start)
		if op == "get" && sum == 0 && n > keys {
			return outcome{}, fmt.Errorf("values read back as zero")
		}
		return outcome{elapsed: elapsed}, nil
	}
}

// ---- Mutex ----

// lockBlock is the shared value of the mutex rows.
type lockBlock struct {
	Mu    shmsync.Mutex
	Count uint64 // incremented under Mu: must end at the total
}

// args: kind n   (kind: robust, sysv:<semid>)
var _ = registerPeer("shmbench-lock", func(w member, a []string) error {
	kind, n := a[0], atoi(a[1])
	v, err := layout.OpenValue[lockBlock](w.fdSpec(0))
	if err != nil {
		return err
	}
	defer v.Close()
	b := v.Ptr()
	var lock func() error
	var unlock func() error
	if kind == "robust" {
		lock = b.Mu.Lock
		unlock = func() error { b.Mu.Unlock(); return nil }
	} else {
		var id int
		if _, err := fmt.Sscanf(kind, "sysv:%d", &id); err != nil {
			return fmt.Errorf("bad lock kind %q", kind)
		}
		set, err := shmsync.OpenSemSetID(id)
		if err != nil {
			return err
		}
		ctx := context.Background()
		lock = func() error { return set.Op(ctx, shmsync.SemOp{Delta: -1, Undo: true}) }
		unlock = func() error { return set.Op(ctx, shmsync.SemOp{Delta: 1, Undo: true}) }
	}
	if err := w.ready(); err != nil {
		return err
	}
	if kind == "robust" {
		// Called directly, as a user writes it (through the func values
		// below, the calls could not be inlined).
		for range n {
			if err := b.Mu.Lock(); err != nil {
				return err
			}
			b.Count++
			b.Mu.Unlock()
		}
		return w.report(tagDone, uint64(n))
	}
	for range n {
		if err := lock(); err != nil {
			return err
		}
		b.Count++
		if err := unlock(); err != nil {
			return err
		}
	}
	return w.report(tagDone, uint64(n))
})

// lockBench: procs workers each take and release the lock n/procs times,
// incrementing a shared counter under it. kind "robust" is shmkit's
// sync.Mutex; "sysv" a SysV semaphore used as a lock (P and V with
// SEM_UNDO), the classic cross-process lock.
func lockBench(kind string, procs int) func(runConfig, int) (outcome, error) {
	return func(cfg runConfig, n int) (outcome, error) {
		v, err := layout.CreateValue[lockBlock]("memfd:" + uniqueName("lock"))
		if err != nil {
			return outcome{}, err
		}
		defer v.Close()
		arg := kind
		if kind == "sysv" {
			set, err := shmsync.CreateSemSet(0, 1, 0o600)
			if err != nil {
				return outcome{}, err
			}
			defer onCleanup(func() { _ = set.Remove() })()
			if err := set.SetVal(0, 1); err != nil {
				return outcome{}, err
			}
			arg = fmt.Sprintf("sysv:%d", set.ID())
		}
		var args [][]string
		for w := range procs {
			share := n / procs
			if w == 0 {
				share += n % procs
			}
			args = append(args, []string{arg, itoa(share)})
		}
		out, err := runWorkers(cfg, "shmbench-lock", []*os.File{v.Segment().Raw().File()}, args, uint64(n))
		if err == nil && v.Ptr().Count != uint64(n) {
			err = fmt.Errorf("counter %d after %d locked increments: mutual exclusion failed", v.Ptr().Count, n)
		}
		return out, err
	}
}

// goMutex is the in-process bound: sync.Mutex shared by goroutines.
func goMutex(goroutines int) func(runConfig, int) (outcome, error) {
	return func(_ runConfig, n int) (outcome, error) {
		var mu sync.Mutex
		var count int
		var wg sync.WaitGroup
		start := time.Now()
		for w := range goroutines {
			share := n / goroutines
			if w == 0 {
				share += n % goroutines
			}
			wg.Go(func() {
				for range share {
					mu.Lock()
					count++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		if count != n {
			return outcome{}, fmt.Errorf("count %d, want %d", count, n)
		}
		return outcome{elapsed: elapsed}, nil
	}
}
