package sync_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testproc"
	shsync "github.com/shmkit/shmkit/sync"
)

// handoffStats is what one handoff process reports.
type handoffStats struct {
	patient     int           // acquisitions by patient waiters
	maxWait     time.Duration // longest LockContext of a patient waiter
	slow        int           // patient LockContexts that took >= handoffPoll/2 while others kept taking the lock
	maxPassed   int64         // most acquisitions by others during one patient LockContext
	impatientOK int           // acquisitions by impatient waiters
	timeouts    int           // impatient LockContexts cancelled by their deadline
}

func (s handoffStats) String() string {
	return fmt.Sprintf("patient=%d maxwait_us=%d slow=%d maxpassed=%d impatient_ok=%d timeouts=%d",
		s.patient, s.maxWait.Microseconds(), s.slow, s.maxPassed, s.impatientOK, s.timeouts)
}

func parseHandoff(line string) (s handoffStats, err error) {
	var us int64
	_, err = fmt.Sscanf(line, "patient=%d maxwait_us=%d slow=%d maxpassed=%d impatient_ok=%d timeouts=%d",
		&s.patient, &us, &s.slow, &s.maxPassed, &s.impatientOK, &s.timeouts)
	s.maxWait = time.Duration(us) * time.Microsecond
	return s, err
}

// spinFor busy-waits d: a critical section that keeps the lock held.
func spinFor(d time.Duration) {
	for t0 := time.Now(); time.Since(t0) < d; {
	}
}

// slowPassed: a patient LockContext that lasted handoffPoll/2 or more while
// at least this many acquisitions by others went past it slept through
// wakes (the lock kept changing hands, so it was not the whole machine
// stalling). The holder alone locks every ~150 µs: a waiter stranded until
// the 100 ms re-check sees several hundred.
const slowPassed = 100

// handoffPoll replaces DeadOwnerPoll in every process of the handoff test:
// a waiter stranded by a lost wake then sleeps seconds, not 100 ms, which no
// scheduling delay on a loaded machine comes near (patient waits of ~100 ms
// do happen there: the lock is not fair, and a woken waiter that loses the
// race to a barging locker parks again behind the others).
const handoffPoll = 3 * time.Second

// runHandoff runs one patient waiter and impatient ones on s.Mu until
// s.Flag2 is set, and returns what they saw.
//
// The patient waiter calls LockContext with a long deadline, holds the lock
// briefly and tries again. Each impatient waiter calls LockContext with a
// deadline of 10 to 410 µs (a few critical sections), so contexts expire all the time, often at the
// moment an Unlock wakes that very waiter; after a timeout it stays away
// for a moment. Every acquisition bumps s.Counter (non-atomically: the lock
// must exclude).
func runHandoff(s *shared, impatient int) (handoffStats, error) {
	var (
		mu    stdsync.Mutex
		st    handoffStats
		first error
		wg    stdsync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	stop := func() bool { return atomic.LoadUint32(&s.Flag2) != 0 }
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			c0 := atomic.LoadInt64(&s.Counter)
			t0 := time.Now()
			err := s.Mu.LockContext(ctx)
			w := time.Since(t0)
			cancel()
			if err != nil {
				fail(fmt.Errorf("patient LockContext: %w", err))
				return
			}
			passed := s.Counter - c0
			s.Counter++
			spinFor(100 * time.Microsecond)
			s.Mu.Unlock()
			mu.Lock()
			st.patient++
			st.maxWait = max(st.maxWait, w)
			st.maxPassed = max(st.maxPassed, passed)
			if w >= handoffPoll/2 && passed >= slowPassed {
				st.slow++
			}
			mu.Unlock()
			time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		}
	}()
	for range impatient {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop() {
				d := time.Duration(10+rand.IntN(400)) * time.Microsecond
				ctx, cancel := context.WithTimeout(context.Background(), d)
				err := s.Mu.LockContext(ctx)
				cancel()
				switch {
				case err == nil:
					s.Counter++
					spinFor(100 * time.Microsecond)
					s.Mu.Unlock()
					mu.Lock()
					st.impatientOK++
					mu.Unlock()
				case errors.Is(err, context.DeadlineExceeded):
					mu.Lock()
					st.timeouts++
					mu.Unlock()
				default:
					fail(fmt.Errorf("impatient LockContext: %w", err))
					return
				}
				if err == nil {
					time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
				} else {
					time.Sleep(time.Duration(10+rand.IntN(40)) * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	return st, first
}

// handoffChild: args spec, impatient waiters. Waits for s.Go, runs
// runHandoff and prints its stats.
var handoffChild = testproc.Register("mutex-handoff", func(args []string) error {
	s, err := openShared(args[0])
	if err != nil {
		return err
	}
	if err := s.Note.Wait(context.Background(), shsync.ParkOnly, func() bool { return atomic.LoadUint32(&s.Go) != 0 }); err != nil {
		return err
	}
	shsync.SetDeadOwnerPoll(handoffPoll)
	st, err := runHandoff(s, atoi(args[1]))
	if err != nil {
		return err
	}
	fmt.Println(st)
	return nil
})

// TestMutexLockContextHandoff: a wake is never swallowed by a cancellation.
// Several processes contend for one Mutex: in each, a patient waiter and
// impatient waiters whose contexts keep expiring, and in this process a
// holder that locks and unlocks in a loop. An Unlock wakes one parked
// waiter; if that waiter's context has just expired and it left without
// passing the wake on (or without taking the lock), the other parked
// waiters would sleep on until their dead-owner re-check, set here to
// handoffPoll (seconds). So no patient LockContext may take half of that
// while the others keep taking the lock.
func TestMutexLockContextHandoff(t *testing.T) {
	const (
		procs     = 3
		impatient = 3
		run       = 2 * time.Second
	)
	defer shsync.SetDeadOwnerPoll(shsync.SetDeadOwnerPoll(handoffPoll))
	spec, s := newShared(t)
	var ps []*testproc.Proc
	for range procs {
		ps = append(ps, handoffChild.Start(t, spec, fmt.Sprint(impatient)))
	}
	time.Sleep(50 * time.Millisecond) // let them park on Go
	startAll(s)

	// This process: the looping holder, plus its own waiters.
	holderDone := make(chan error, 1)
	holderLocks := 0
	go func() {
		for atomic.LoadUint32(&s.Flag2) == 0 {
			if err := s.Mu.Lock(); err != nil {
				holderDone <- err
				return
			}
			s.Counter++
			holderLocks++
			spinFor(50 * time.Microsecond)
			s.Mu.Unlock()
			time.Sleep(100 * time.Microsecond)
		}
		holderDone <- nil
	}()
	localDone := make(chan struct{})
	var local handoffStats
	var localErr error
	go func() {
		local, localErr = runHandoff(s, impatient)
		close(localDone)
	}()
	time.Sleep(run)
	atomic.StoreUint32(&s.Flag2, 1)
	if err := <-holderDone; err != nil {
		t.Fatalf("holder Lock: %v", err)
	}
	<-localDone
	if localErr != nil {
		t.Fatal(localErr)
	}
	all := []handoffStats{local}
	for i, p := range ps {
		if err := p.Wait(30 * time.Second); err != nil {
			t.Fatalf("process %d: %v\n%s", i, err, p.Output())
		}
		st, err := parseHandoff(p.Output())
		if err != nil {
			t.Fatalf("process %d output %q: %v", i, p.Output(), err)
		}
		all = append(all, st)
	}
	var total handoffStats
	acquisitions := int64(holderLocks)
	for i, st := range all {
		t.Logf("process %d: %v", i, st)
		total.patient += st.patient
		total.impatientOK += st.impatientOK
		total.timeouts += st.timeouts
		total.slow += st.slow
		total.maxWait = max(total.maxWait, st.maxWait)
		total.maxPassed = max(total.maxPassed, st.maxPassed)
		acquisitions += int64(st.patient + st.impatientOK)
	}
	t.Logf("holder %d locks; all: %v", holderLocks, total)
	if s.Counter != acquisitions {
		t.Fatalf("counter %d after %d acquisitions: the lock did not exclude", s.Counter, acquisitions)
	}
	// The run must have exercised what it claims: many handoffs to patient
	// waiters, and many cancellations.
	if total.patient < 200 || total.timeouts < 100 || holderLocks < 100 {
		t.Fatalf("too little contention to judge: %v, holder %d", total, holderLocks)
	}
	if total.slow != 0 {
		t.Fatalf("%d patient LockContexts took >= %v (half the dead-owner re-check), longest %v: a wake was lost to a cancellation",
			total.slow, handoffPoll/2, total.maxWait)
	}
}
