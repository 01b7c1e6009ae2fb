package sync_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/shmkit/shmkit/internal/testproc"
	shsync "github.com/shmkit/shmkit/sync"
)

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

// signal sets *flag to v and wakes the parent parked on n.
func signal(n *shsync.Notifier, flag *uint32, v uint32) {
	atomic.StoreUint32(flag, v)
	n.Notify()
}

// counterChild: args spec, mode (mutex|sem|semset), K, [semset id].
// Adds 1 to the shared counter K times, non-atomically, under the lock.
var counterChild = testproc.Register("counter", func(args []string) error {
	s, err := openShared(args[0])
	if err != nil {
		return err
	}
	k := atoi(args[2])
	// Start together so the children really contend.
	ctx := context.Background()
	if err := s.Note.Wait(ctx, SpinThenParkPolicy, func() bool { return atomic.LoadUint32(&s.Go) != 0 }); err != nil {
		return err
	}
	switch args[1] {
	case "mutex":
		for range k {
			if err := s.Mu.Lock(); err != nil {
				return err
			}
			s.Counter++
			s.Mu.Unlock()
		}
	case "sem":
		for range k {
			if err := s.LockSem.Wait(); err != nil {
				return err
			}
			s.Counter++
			if err := s.LockSem.Post(); err != nil {
				return err
			}
		}
	case "semset":
		set, err := shsync.OpenSemSetID(atoi(args[3]))
		if err != nil {
			return err
		}
		for range k {
			if err := set.Op(ctx, shsync.SemOp{Num: 0, Delta: -1, Undo: true}); err != nil {
				return err
			}
			s.Counter++
			if err := set.Op(ctx, shsync.SemOp{Num: 0, Delta: 1, Undo: true}); err != nil {
				return err
			}
		}
	case "none":
		for range k {
			s.Counter++
		}
	default:
		return fmt.Errorf("bad mode %q", args[1])
	}
	return nil
})

// SpinThenParkPolicy is a short alias used by children.
var SpinThenParkPolicy = shsync.SpinThenPark

// holdChild: args spec, variant. Locks Mu (variant "forget": then drops
// it from the robust list, as if the list were broken), signals Flag=1 and
// waits to be killed.
var holdChild = testproc.Register("mutex-hold", func(args []string) error {
	s, err := openShared(args[0])
	if err != nil {
		return err
	}
	if err := s.Mu.Lock(); err != nil {
		return err
	}
	s.Counter = 12345 // a "half-done update" the survivor must repair
	if len(args) > 1 && args[1] == "forget" {
		if n := shsync.ForgetRange(unsafeBytes(s)); n != 1 {
			return fmt.Errorf("ForgetRange forgot %d locks, want 1", n)
		}
	}
	atomic.StoreUint32(&s.Flag2, uint32(shsync.SharedListLen()))
	signal(&s.Note, &s.Flag, 1)
	select {}
})

// lockOnceChild: args spec. Prints the result of Mu.Lock ("ok", or the
// error), unlocking if acquired.
var lockOnceChild = testproc.Register("mutex-lock-once", func(args []string) error {
	s, err := openShared(args[0])
	if err != nil {
		return err
	}
	err = s.Mu.Lock()
	switch err {
	case nil:
		s.Mu.Unlock()
		fmt.Println("ok")
	default:
		fmt.Println(err)
	}
	return nil
})

// crashChild: args spec, op (lock|lock-unlock). Run with a crash point
// armed; it is expected to die inside the robust-list window.
var crashChild = testproc.Register("mutex-crash", func(args []string) error {
	s, err := openShared(args[0])
	if err != nil {
		return err
	}
	if err := s.Mu.Lock(); err != nil {
		return err
	}
	if args[1] == "lock-unlock" {
		s.Mu.Unlock()
	}
	return fmt.Errorf("crash point did not fire")
})

// semsetHoldChild: args spec, id. Takes semaphore 0 with SEM_UNDO, signals
// Flag=1 and waits to be killed.
var semsetHoldChild = testproc.Register("semset-hold", func(args []string) error {
	s, err := openShared(args[0])
	if err != nil {
		return err
	}
	set, err := shsync.OpenSemSetID(atoi(args[1]))
	if err != nil {
		return err
	}
	if err := set.Op(context.Background(), shsync.SemOp{Num: 0, Delta: -1, Undo: true}); err != nil {
		return err
	}
	signal(&s.Note, &s.Flag, 1)
	select {}
})
