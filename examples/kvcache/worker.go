package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/shmmap"
)

const (
	envWorker    = "SHMKIT_KVCACHE_WORKER" // the worker's number
	envParent    = "SHMKIT_KVCACHE_PARENT" // the parent's pid
	envCache     = "SHMKIT_KVCACHE_CACHE"  // spec of the cache
	countersSpec = "fd:3"                  // the counters: an inherited memfd
)

func workerMain(cfg config, arg string) int {
	signal.Ignore(syscall.SIGINT) // the parent handles Ctrl-C
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if strconv.Itoa(os.Getppid()) != os.Getenv(envParent) {
		return 1
	}
	w, err := strconv.Atoi(arg)
	if err == nil && (w < 0 || w >= maxWorkers) {
		err = fmt.Errorf("worker %d out of range", w)
	}
	if err == nil {
		err = lookups(ctx, cfg, w)
	}
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "kvcache: worker %s: %v\n", arg, err)
		return 1
	}
	return 0
}

func lookups(ctx context.Context, cfg config, w int) error {
	cache, err := shmmap.Open[Key, Entry](os.Getenv(envCache))
	if err != nil {
		return err
	}
	defer cache.Close()
	cv, err := layout.OpenValue[counters](countersSpec)
	if err != nil {
		return err
	}
	defer cv.Close()
	c := &cv.Ptr().W[w]

	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(w)))
	zipf := rand.NewZipf(rng, cfg.zipf, 1, cfg.keys-1)
	for i := range cfg.lookups {
		if i%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		k := Key{zipf.Uint64()}
		if e, ok := cache.Get(k); ok {
			c.Hits.Add(1)
			if e.Check != check(k.N, e.Value) {
				c.Bad.Add(1)
			}
			c.Lookups.Add(1)
			continue
		}
		c.Misses.Add(1)
		v := expensive(k.N, cfg.rounds)
		e := Entry{Value: v, Check: check(k.N, v), Worker: int32(w), Computed: time.Now().UnixNano()}
		// LoadOrStore, not Put: if another worker filled the key in
		// while we computed, keep its entry.
		_, loaded, err := cache.LoadOrStore(k, e)
		switch {
		case errors.Is(err, shmmap.ErrFull):
			c.Full.Add(1)
		case err != nil:
			return err
		case loaded:
			c.Raced.Add(1)
		default:
			c.Stored.Add(1)
		}
		c.Lookups.Add(1)
	}
	return nil
}
