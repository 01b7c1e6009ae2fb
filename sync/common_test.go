package sync_test

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testproc"
	shsync "github.com/shmkit/shmkit/sync"
)

// awaitFlag parks on n until *flag == want, failing the test if p exits
// first or 30 s pass. This is the children's "I am ready" signal.
func awaitFlag(t testing.TB, p *testproc.Proc, n *shsync.Notifier, flag *uint32, want uint32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		select {
		case <-p.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := n.Wait(ctx, shsync.ParkOnly, func() bool { return atomic.LoadUint32(flag) == want }); err != nil {
		t.Fatalf("child did not signal flag=%d: %v\n%s", want, err, p.Output())
	}
}

// startAll releases children waiting on s.Go.
func startAll(s *shared) {
	atomic.StoreUint32(&s.Go, 1)
	s.Note.Notify()
}

func pidSelf() int { return os.Getpid() }

// newSemSet creates a private SysV semaphore set removed at cleanup.
func newSemSet(t testing.TB, n int) *shsync.SemSet {
	t.Helper()
	set, err := shsync.CreateSemSet(0, n, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Remove() })
	return set
}

type atomicFlag struct{ v atomic.Uint32 }

func (f *atomicFlag) set()      { f.v.Store(1) }
func (f *atomicFlag) get() bool { return f.v.Load() != 0 }

// envSharedList makes a test process (and its children) put every lock on
// the keeper's shared robust list instead of per-P keepers.
const envSharedList = "SHMKIT_TEST_SHARED_LIST"

// forEachListMode runs f with per-P keepers and with the shared list.
func forEachListMode(t *testing.T, f func(t *testing.T)) {
	t.Run("per-P", f)
	t.Run("shared-list", func(t *testing.T) {
		t.Setenv(envSharedList, "1")
		shsync.SetSharedListOnly(true)
		defer shsync.SetSharedListOnly(false)
		f(t)
	})
}

// cancelCases are the two ways a blocked call must give up: a deadline and
// an explicit cancel, each the given time after the call blocks.
func cancelCases(after time.Duration) []cancelCase {
	return []cancelCase{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), after)
		}, context.DeadlineExceeded},
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(after, cancel)
			return ctx, cancel
		}, context.Canceled},
	}
}

type cancelCase struct {
	name string
	mk   func() (context.Context, context.CancelFunc)
	want error
}
