package sync_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	shsync "github.com/shmkit/shmkit/sync"
)

// Counters is a struct placed in a shared segment: a robust lock and the
// data it guards.
type Counters struct {
	Mu    shsync.Mutex
	Count int64
}

// Every process runs the same few lines: open the segment, lock, add, unlock.
// If a previous holder was killed mid-update, Lock says so and the caller
// repairs before going on.
func ExampleMutex() {
	spec := fmt.Sprintf("posix:/shmkit-example-mutex-%d", os.Getpid())
	v, err := layout.CreateValue[Counters](spec) // other processes: layout.OpenValue
	if err != nil {
		log.Fatal(err)
	}
	defer segment.Remove(spec)
	defer v.Close()
	c := v.Ptr()

	for range 3 {
		err := c.Mu.Lock()
		if errors.Is(err, shsync.ErrOwnerDead) {
			// The previous holder died holding the lock: c.Count may be
			// half-updated. Repair it, then declare it consistent.
			_ = c.Mu.MarkConsistent()
		} else if err != nil {
			log.Fatal(err) // ErrNotRecoverable
		}
		c.Count++
		c.Mu.Unlock()
	}
	fmt.Println(c.Count)
	// Output: 3
}

// SemCounter is the seeds' counter guarded by a futex semaphore.
type SemCounter struct {
	Sem   shsync.Semaphore
	Count int64
}

// Two (or more) processes incrementing one counter under a semaphore used
// as a lock. The creator initializes the semaphore to 1 before sharing.
func ExampleSemaphore() {
	spec := fmt.Sprintf("posix:/shmkit-example-sem-%d", os.Getpid())
	v, err := layout.CreateValue[SemCounter](spec)
	if err != nil {
		log.Fatal(err)
	}
	defer segment.Remove(spec)
	defer v.Close()
	c := v.Ptr()
	c.Sem.Init(1)

	// In each process:
	for range 5 {
		if err := c.Sem.Wait(); err != nil {
			log.Fatal(err)
		}
		c.Count++
		_ = c.Sem.Post()
	}
	fmt.Println(c.Count)
	// Output: 5
}

// The classic producer/consumer over a SysV semaphore set: "items" and
// "slots" count (no SEM_UNDO: a dead producer's items stay produced), the
// lock has SEM_UNDO (a dead holder's P is undone). Each side takes its
// counting semaphore and the lock in one atomic semop.
func ExampleSemSet() {
	const items, slots, lock = 0, 1, 2
	set, err := shsync.CreateSemSet(0, 3, 0o600) // or a key from Ftok, opened with OpenSemSet
	if err != nil {
		log.Fatal(err)
	}
	defer set.Remove()
	_ = set.SetAll([]uint16{0, 8, 1}) // 8 free slots, lock free

	ctx := context.Background()
	produce := func() error {
		if err := set.Op(ctx, shsync.SemOp{Num: slots, Delta: -1}, shsync.SemOp{Num: lock, Delta: -1, Undo: true}); err != nil {
			return err
		}
		// ... put an item into the shared buffer ...
		return set.Op(ctx, shsync.SemOp{Num: lock, Delta: 1, Undo: true}, shsync.SemOp{Num: items, Delta: 1})
	}
	consume := func() error {
		if err := set.Op(ctx, shsync.SemOp{Num: items, Delta: -1}, shsync.SemOp{Num: lock, Delta: -1, Undo: true}); err != nil {
			return err
		}
		// ... take the item out ...
		return set.Op(ctx, shsync.SemOp{Num: lock, Delta: 1, Undo: true}, shsync.SemOp{Num: slots, Delta: 1})
	}
	_ = produce()
	_ = produce()
	_ = consume()
	vals, _ := set.GetAll()
	fmt.Println("items", vals[items], "slots", vals[slots], "lock", vals[lock])
	// Output: items 1 slots 7 lock 1
}

// Without a lock, processes lose updates: c.Count++ is a load, an add and a
// store, and two processes interleaving them write back the same value. Run
// it with a few processes and large K and the total comes out below N*K
// (how far below depends on the machine, so this example has no checked
// output; TestCounter checks the locked versions exactly).
func Example_unlockedCounter() {
	spec := "posix:/shmkit-example-unlocked"
	v, err := layout.OpenValue[Counters](spec) // created by the parent
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	c := v.Ptr()
	for range 1_000_000 {
		c.Count++ // racy on purpose: no lock
	}
}

// A ring or queue parks on a Notifier until its condition holds; the peer
// publishes, then calls Notify, which costs nothing when nobody is parked.
func ExampleNotifier() {
	var n shsync.Notifier // in a real program: a field of a struct in a segment
	var ready atomicFlag
	go func() {
		ready.set()
		n.Notify()
	}()
	err := n.Wait(context.Background(), shsync.SpinThenPark, ready.get)
	fmt.Println(err, n.Waiting())
	// Output: <nil> false
}
