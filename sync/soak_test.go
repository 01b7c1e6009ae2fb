package sync_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testproc"
	shsync "github.com/shmkit/shmkit/sync"
)

// soakWorker: args spec. Updates the pair (A, B) under Mu in two steps
// (A++, then B = A) so that a kill between them leaves A != B, repairs the
// pair when Lock reports ErrOwnerDead, and loops until Go is 2.
var soakWorker = testproc.Register("soak-worker", func(args []string) error {
	s, err := openShared(args[0])
	if err != nil {
		return err
	}
	for atomic.LoadUint32(&s.Go) != 2 {
		err := s.Mu.Lock()
		switch {
		case errors.Is(err, shsync.ErrOwnerDead):
			atomic.StoreUint64(&s.B, atomic.LoadUint64(&s.A)) // repair
			atomic.AddUint64(&s.Dups, 1)                      // count repairs
			if err := s.Mu.MarkConsistent(); err != nil {
				return err
			}
		case err != nil:
			return err
		}
		if a, b := atomic.LoadUint64(&s.A), atomic.LoadUint64(&s.B); a != b {
			s.Mu.Unlock()
			return errors.New("pair torn under a consistent lock")
		}
		atomic.AddUint64(&s.A, 1)
		atomic.StoreUint64(&s.B, atomic.LoadUint64(&s.A))
		s.Mu.Unlock()
		s.Note.Notify()
	}
	return nil
})

// TestMutexRandomKills SIGKILLs lock-hammering workers at random moments
// and restarts them: the lock never deadlocks, never becomes not
// recoverable (every ErrOwnerDead is repaired), and the pair is never seen
// torn. SHMKIT_SOAK=1 runs it longer.
func TestMutexRandomKills(t *testing.T) { forEachListMode(t, testMutexRandomKills) }

func testMutexRandomKills(t *testing.T) {
	kills := 15
	if os.Getenv("SHMKIT_SOAK") == "1" {
		kills = 500
	}
	spec, s := newShared(t)
	const workers = 3
	ps := make([]*testproc.Proc, workers)
	for i := range ps {
		ps[i] = soakWorker.Start(t, spec)
	}
	for k := range kills + 1 {
		// Wait for progress (proves no deadlock after the previous kill).
		target := atomic.LoadUint64(&s.A) + 200
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := s.Note.Wait(ctx, shsync.ParkOnly, func() bool { return atomic.LoadUint64(&s.A) >= target })
		cancel()
		if err != nil {
			t.Fatalf("no progress after %d kills (A=%d, state %+v): %v", k, atomic.LoadUint64(&s.A), s.Mu.State(), err)
		}
		if k == kills {
			break // progress after the last kill seen
		}
		i := rand.IntN(workers)
		ps[i].Kill()
		ps[i] = soakWorker.Start(t, spec)
	}
	atomic.StoreUint32(&s.Go, 2)
	for _, p := range ps {
		if err := p.Wait(time.Minute); err != nil {
			t.Fatalf("worker: %v\n%s", err, p.Output())
		}
	}
	if err := s.Mu.Lock(); err != nil {
		t.Fatalf("final Lock = %v", err)
	}
	if s.A != s.B {
		t.Fatalf("pair torn at the end: %d %d", s.A, s.B)
	}
	s.Mu.Unlock()
	t.Logf("%d kills, %d updates, %d owner-dead repairs", kills, s.A, s.Dups)
}
