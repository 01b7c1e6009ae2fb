package sync_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/internal/testproc"
	shsync "github.com/shmkit/shmkit/sync"
)

func TestMutexBasic(t *testing.T) { forEachListMode(t, testMutexBasic) }

func testMutexBasic(t *testing.T) {
	_, s := newShared(t)
	m := &s.Mu
	if st := m.State(); st.Locked || st.NotRecoverable || st.OwnerDead {
		t.Fatalf("zero Mutex state %+v", st)
	}
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	wantShared := 0
	if os.Getenv(envSharedList) == "1" {
		wantShared = 1
	}
	if n := shsync.SharedListLen(); n != wantShared {
		t.Fatalf("%d locks on the shared list, want %d", n, wantShared)
	}
	st := m.State()
	tids, robust := shsync.KeeperTIDs()
	if !robust {
		t.Error("set_robust_list not registered")
	}
	if !st.Locked || !st.Mine || !slices.Contains(tids, st.OwnerTID) || st.Owner.PID != int32(pidSelf()) || st.OwnerDead {
		t.Fatalf("locked state %+v (keepers %v)", st, tids)
	}
	if ok, err := m.TryLock(); ok || err != nil {
		t.Fatalf("TryLock on a held mutex = %v, %v", ok, err)
	}
	if err := m.MarkConsistent(); !errors.Is(err, shsync.ErrNotInconsistent) {
		t.Fatalf("MarkConsistent on a consistent mutex: %v", err)
	}
	m.Unlock()
	if st := m.State(); st.Locked {
		t.Fatalf("unlocked state %+v", st)
	}
	if ok, err := m.TryLock(); !ok || err != nil {
		t.Fatalf("TryLock on a free mutex = %v, %v", ok, err)
	}
	m.Unlock()
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Unlock of an unlocked Mutex did not panic")
			}
		}()
		m.Unlock()
	}()
}

// Nested locks unlocked in every order keep the private mirror and the
// kernel chain consistent (each Unlock finds its entry).
func TestMutexNestedOrders(t *testing.T) { forEachListMode(t, testMutexNestedOrders) }

func testMutexNestedOrders(t *testing.T) {
	_, s := newShared(t)
	ms := []*shsync.Mutex{&s.Mu, &s.Mu2}
	for _, order := range [][]int{{0, 1}, {1, 0}} {
		for _, m := range ms {
			if err := m.Lock(); err != nil {
				t.Fatal(err)
			}
		}
		for _, i := range order {
			ms[i].Unlock()
		}
	}
	for _, m := range ms {
		if ok, _ := m.TryLock(); !ok {
			t.Fatal("mutex still held")
		}
		m.Unlock()
	}
}

func TestMutexGoroutines(t *testing.T) { forEachListMode(t, testMutexGoroutines) }

func testMutexGoroutines(t *testing.T) {
	_, s := newShared(t)
	const g, k = 8, 2000
	var guarded int // Go-heap data guarded by the shared lock: -race must stay quiet
	done := make(chan error)
	for range g {
		go func() {
			for range k {
				if err := s.Mu.Lock(); err != nil {
					done <- err
					return
				}
				guarded++
				s.Counter++
				s.Mu.Unlock()
			}
			done <- nil
		}()
	}
	for range g {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if guarded != g*k || s.Counter != g*k {
		t.Fatalf("counter %d / %d, want %d", guarded, s.Counter, g*k)
	}
}

// TestCounter: the seeds' example. N processes add 1 to a shared int64 K
// times each under a lock; the total is exactly N*K.
func TestCounter(t *testing.T) {
	const n = 4
	ks := map[string]int{"mutex": 20000, "sem": 20000, "semset": 2000}
	if raceEnabled {
		ks = map[string]int{"mutex": 5000, "sem": 5000, "semset": 1000}
	}
	for _, mode := range []string{"mutex", "sem", "semset"} {
		t.Run(mode, func(t *testing.T) {
			spec, s := newShared(t)
			s.LockSem.Init(1)
			args := []string{spec, mode, strconv.Itoa(ks[mode])}
			if mode == "semset" {
				set := newSemSet(t, 1)
				if err := set.SetVal(0, 1); err != nil {
					t.Fatal(err)
				}
				args = append(args, strconv.Itoa(set.ID()))
			}
			ps := make([]*testproc.Proc, n)
			for i := range ps {
				ps[i] = counterChild.Start(t, args...)
			}
			startAll(s)
			for _, p := range ps {
				if err := p.Wait(2 * time.Minute); err != nil {
					t.Fatalf("child: %v\n%s", err, p.Output())
				}
			}
			if want := int64(n * ks[mode]); s.Counter != want {
				t.Fatalf("counter = %d, want %d", s.Counter, want)
			}
		})
	}
}

// killHolder starts a child that locks s.Mu (and optionally forgets it from
// its robust list), waits for its signal and SIGKILLs it.
func killHolder(t *testing.T, spec string, s *shared, variant string) {
	t.Helper()
	p := holdChild.Start(t, spec, variant)
	awaitFlag(t, p, &s.Note, &s.Flag, 1)
	checkChildListMode(t, s, variant)
	p.Kill()
}

// checkChildListMode checks that a holdChild used the list mode under test.
func checkChildListMode(t *testing.T, s *shared, variant string) {
	t.Helper()
	want := uint32(0)
	if os.Getenv(envSharedList) == "1" && variant != "forget" {
		want = 1
	}
	if got := atomic.LoadUint32(&s.Flag2); got != want {
		t.Fatalf("child had %d locks on its shared list, want %d", got, want)
	}
}

func TestMutexOwnerDead(t *testing.T) { forEachListMode(t, testMutexOwnerDead) }

func testMutexOwnerDead(t *testing.T) {
	spec, s := newShared(t)
	killHolder(t, spec, s, "")
	word := atomic.LoadUint32(wordOf(&s.Mu))
	if word&futex.OwnerDied == 0 {
		t.Fatalf("kernel did not mark the word OWNER_DIED: %#x", word)
	}
	// The kernel leaves OWNER_DIED (and the waiters bit) with TID 0.
	if st := s.Mu.State(); !st.OwnerDead || st.Locked {
		t.Fatalf("state after holder death %+v", st)
	}
	if err := s.Mu.Lock(); !errors.Is(err, shsync.ErrOwnerDead) {
		t.Fatalf("Lock after holder death = %v, want ErrOwnerDead", err)
	}
	if st := s.Mu.State(); !st.Inconsistent || st.OwnerDead {
		t.Fatalf("state while repairing %+v", st)
	}
	s.Counter = 0 // repair
	if err := s.Mu.MarkConsistent(); err != nil {
		t.Fatal(err)
	}
	s.Mu.Unlock()
	if err := s.Mu.Lock(); err != nil {
		t.Fatalf("Lock after repair = %v", err)
	}
	s.Mu.Unlock()
	if out := lockOnceChild.Run(t, spec); strings.TrimSpace(out) != "ok" {
		t.Fatalf("another process after repair: %q", out)
	}
}

// A waiter already parked when the holder is killed is woken by the
// kernel's robust-list walk, well before the /proc fallback poll.
func TestMutexOwnerDeadWakesWaiter(t *testing.T) { forEachListMode(t, testMutexOwnerDeadWakesWaiter) }

func testMutexOwnerDeadWakesWaiter(t *testing.T) {
	spec, s := newShared(t)
	p := holdChild.Start(t, spec, "")
	awaitFlag(t, p, &s.Note, &s.Flag, 1)
	checkChildListMode(t, s, "")
	steals := shsync.FallbackSteals()
	got := make(chan error, 1)
	go func() { got <- s.Mu.Lock() }()
	for !s.Mu.State().Waiters { // the waiter sets the bit before parking
		runtime.Gosched()
	}
	p.Kill()
	if err := <-got; !errors.Is(err, shsync.ErrOwnerDead) {
		t.Fatalf("parked Lock = %v, want ErrOwnerDead", err)
	}
	if shsync.FallbackSteals() != steals {
		t.Fatal("waiter recovered through the /proc fallback, not the kernel")
	}
	if err := s.Mu.MarkConsistent(); err != nil {
		t.Fatal(err)
	}
	s.Mu.Unlock()
}

func TestMutexNotRecoverable(t *testing.T) { forEachListMode(t, testMutexNotRecoverable) }

func testMutexNotRecoverable(t *testing.T) {
	spec, s := newShared(t)
	killHolder(t, spec, s, "")
	if err := s.Mu.Lock(); !errors.Is(err, shsync.ErrOwnerDead) {
		t.Fatalf("Lock = %v, want ErrOwnerDead", err)
	}
	parked := make(chan error, 1)
	go func() { parked <- s.Mu.Lock() }()
	for !s.Mu.State().Waiters {
		runtime.Gosched()
	}
	s.Mu.Unlock() // without MarkConsistent
	if err := <-parked; !errors.Is(err, shsync.ErrNotRecoverable) {
		t.Fatalf("parked Lock = %v, want ErrNotRecoverable", err)
	}
	if err := s.Mu.Lock(); !errors.Is(err, shsync.ErrNotRecoverable) {
		t.Fatalf("Lock = %v, want ErrNotRecoverable", err)
	}
	if ok, err := s.Mu.TryLock(); ok || !errors.Is(err, shsync.ErrNotRecoverable) {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.Mu.LockContext(ctx); !errors.Is(err, shsync.ErrNotRecoverable) {
		t.Fatalf("LockContext = %v", err)
	}
	if !s.Mu.State().NotRecoverable {
		t.Fatal("State does not report NotRecoverable")
	}
	want := shsync.ErrNotRecoverable.Error()
	if out := lockOnceChild.Run(t, spec); strings.TrimSpace(out) != want {
		t.Fatalf("another process: %q, want %q", out, want)
	}
}

// The holder's robust list is broken (ForgetRange), so the kernel cannot
// mark the word: the blocked Lock notices through the /proc fallback.
func TestMutexOwnerDeadFallback(t *testing.T) { forEachListMode(t, testMutexOwnerDeadFallback) }

func testMutexOwnerDeadFallback(t *testing.T) {
	spec, s := newShared(t)
	killHolder(t, spec, s, "forget")
	if w := atomic.LoadUint32(wordOf(&s.Mu)); w&futex.OwnerDied != 0 {
		t.Fatalf("word %#x marked although the entry was not on the list", w)
	}
	steals := shsync.FallbackSteals()
	start := time.Now()
	if err := s.Mu.Lock(); !errors.Is(err, shsync.ErrOwnerDead) {
		t.Fatalf("Lock = %v, want ErrOwnerDead", err)
	}
	if shsync.FallbackSteals() != steals+1 {
		t.Fatal("fallback path not taken")
	}
	t.Logf("fallback detection took %v", time.Since(start))
	if err := s.Mu.MarkConsistent(); err != nil {
		t.Fatal(err)
	}
	s.Mu.Unlock()
	if err := s.Mu.Lock(); err != nil {
		t.Fatal(err)
	}
	s.Mu.Unlock()
}

// Deaths inside the robust-list windows (word taken, entry not yet linked;
// entry unlinked, word not yet released) are covered by list_op_pending.
func TestMutexCrashInListWindow(t *testing.T) { forEachListMode(t, testMutexCrashInListWindow) }

func testMutexCrashInListWindow(t *testing.T) {
	for _, c := range []struct {
		point, op string
		wantDead  bool
	}{
		{"sync.mutex-acquired-not-linked", "lock", true},
		{"sync.mutex-unlinked-not-released", "lock-unlock", true},
	} {
		t.Run(c.point, func(t *testing.T) {
			spec, s := newShared(t)
			cmd := crashChild.Command(t, spec, c.op)
			cmd.Env = append(cmd.Env, crashpoint.Arm(c.point, 1))
			p := testproc.StartCmd(t, cmd)
			err := p.Wait(time.Minute)
			var ee interface{ ExitCode() int }
			if !errors.As(err, &ee) || !strings.Contains(err.Error(), "killed") {
				t.Fatalf("child was not killed by the crash point: %v\n%s", err, p.Output())
			}
			if w := atomic.LoadUint32(wordOf(&s.Mu)); w&futex.OwnerDied == 0 {
				t.Fatalf("word %#x not marked OWNER_DIED by the pending-op slot", w)
			}
			steals := shsync.FallbackSteals()
			if err := s.Mu.Lock(); !errors.Is(err, shsync.ErrOwnerDead) {
				t.Fatalf("Lock = %v, want ErrOwnerDead", err)
			}
			if shsync.FallbackSteals() != steals {
				t.Fatal("recovered by the fallback, not the kernel")
			}
			if err := s.Mu.MarkConsistent(); err != nil {
				t.Fatal(err)
			}
			s.Mu.Unlock()
		})
	}
}

func TestMutexLockContext(t *testing.T) { forEachListMode(t, testMutexLockContext) }

func testMutexLockContext(t *testing.T) {
	_, s := newShared(t)
	if err := s.Mu.Lock(); err != nil {
		t.Fatal(err)
	}
	for _, c := range cancelCases(30 * time.Millisecond) {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := c.mk()
			defer cancel()
			start := time.Now()
			err := s.Mu.LockContext(ctx)
			if !errors.Is(err, c.want) {
				t.Fatalf("LockContext = %v, want %v", err, c.want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("cancellation took %v", d)
			}
			if st := s.Mu.State(); !st.Locked || !st.Mine || st.Inconsistent || st.NotRecoverable {
				t.Fatalf("state after cancelled LockContext %+v", st)
			}
		})
	}
	s.Mu.Unlock()
	if ok, err := s.Mu.TryLock(); !ok || err != nil {
		t.Fatalf("TryLock after cancelled waiters = %v, %v", ok, err)
	}
	s.Mu.Unlock()
	if st := s.Mu.State(); st.Locked {
		t.Fatalf("state %+v", st)
	}
}

// Many locks held at once by one process: beyond the per-P keepers they
// spill onto the shared list; unlocked in random orders, every Unlock finds
// its registration, and a child then sees all of them free.
func TestMutexManyHeld(t *testing.T) {
	ms := newSegOf[[40]shsync.Mutex](t)
	for round := range 20 {
		order := rand.Perm(len(ms))
		for _, i := range order {
			if err := ms[i].Lock(); err != nil {
				t.Fatal(err)
			}
		}
		if round == 0 {
			if n := shsync.SharedListLen(); n == 0 {
				t.Fatal("40 held locks but none on the shared list")
			}
		}
		for _, i := range rand.Perm(len(ms)) {
			ms[i].Unlock()
		}
		if n := shsync.SharedListLen(); n != 0 {
			t.Fatalf("%d locks left on the shared list", n)
		}
	}
	for i := range ms {
		if st := ms[i].State(); st.Locked || st.Waiters {
			t.Fatalf("mutex %d: %+v", i, st)
		}
	}
}

// A peer that scribbles the lock word while this process holds the lock
// must not make Unlock panic (shared memory is never trusted): Unlock frees
// this process's keeper, and the mutex is usable again afterwards.
func TestMutexUnlockAfterScribbledWord(t *testing.T) {
	forEachListMode(t, testMutexUnlockAfterScribbledWord)
}

func testMutexUnlockAfterScribbledWord(t *testing.T) {
	_, s := newShared(t)
	m := &s.Mu
	for _, garbage := range []uint32{0, 0x12345, 0xdeadbeef} {
		if err := m.Lock(); err != nil {
			t.Fatal(err)
		}
		shsync.ScribbleWord(m, garbage)
		m.Unlock() // must not panic
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := m.LockContext(ctx)
		cancel()
		if err != nil && !errors.Is(err, shsync.ErrOwnerDead) {
			t.Fatalf("after scribble %#x: Lock = %v", garbage, err)
		}
		if errors.Is(err, shsync.ErrOwnerDead) {
			if err := m.MarkConsistent(); err != nil {
				t.Fatal(err)
			}
		}
		m.Unlock()
	}
	if n := shsync.SharedListLen(); n != 0 {
		t.Fatalf("%d locks left on the shared list", n)
	}
}

// A peer that scribbles a held Mutex's link field (for a lock held through
// a per-P keeper, the hint naming that keeper for Unlock) must not make
// Unlock panic, release another lock this process holds, or leave a keeper
// claimed; and a hint copied from a held Mutex must not let Unlock of a
// Mutex this process does not hold succeed.
func TestMutexScribbledHint(t *testing.T) { forEachListMode(t, testMutexScribbledHint) }

func testMutexScribbledHint(t *testing.T) {
	_, s := newShared(t)
	a, b := &s.Mu, &s.Mu2
	lockBoth := func() {
		t.Helper()
		if err := a.Lock(); err != nil {
			t.Fatal(err)
		}
		if err := b.Lock(); err != nil {
			t.Fatal(err)
		}
	}
	for _, garbage := range []uint64{0, 1, 127, 128, 129, 256, 512, 128 * 256, 128 * 257, 1 << 63, ^uint64(0)} {
		lockBoth()
		shsync.ScribbleNext(a, garbage)
		a.Unlock() // must not panic
		if st := a.State(); st.Locked {
			t.Fatalf("hint %#x: a still locked after Unlock: %+v", garbage, st)
		}
		if st := b.State(); !st.Locked || !st.Mine {
			t.Fatalf("hint %#x: Unlock of a released b: %+v", garbage, st)
		}
		shsync.ScribbleNext(b, shsync.NextOf(b)+128)
		b.Unlock()
		if st := b.State(); st.Locked {
			t.Fatalf("b still locked after Unlock: %+v", st)
		}
	}
	// A peer copies b's word and link into a: Unlock of a must release a
	// alone.
	lockBoth()
	shsync.ScribbleWord(a, uint32(b.State().OwnerTID))
	shsync.ScribbleNext(a, shsync.NextOf(b))
	a.Unlock()
	if st := b.State(); !st.Locked || !st.Mine {
		t.Fatalf("Unlock of a with b's word and link released b: %+v", st)
	}
	b.Unlock()
	if ok, err := a.TryLock(); !ok || err != nil {
		t.Fatalf("TryLock(a) = %v, %v after the copied-word Unlock", ok, err)
	}
	a.Unlock()
	// a is free; its hint names the keeper holding b.
	if err := b.Lock(); err != nil {
		t.Fatal(err)
	}
	shsync.ScribbleNext(a, shsync.NextOf(b))
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Unlock of a Mutex not held did not panic")
			}
		}()
		a.Unlock()
	}()
	if st := b.State(); !st.Locked || !st.Mine {
		t.Fatalf("Unlock of a free a released b: %+v", st)
	}
	b.Unlock()
	if n := shsync.ClaimedKeepers(); n != 0 {
		t.Fatalf("%d keepers left claimed", n)
	}
	if n := shsync.SharedListLen(); n != 0 {
		t.Fatalf("%d locks left on the shared list", n)
	}
}
