package sync

import (
	stdsync "sync"
	"time"

	"golang.org/x/sys/unix"
)

// Light wakes: the waiter pays for both halves of the handshake.
//
// A Notifier's handshake is Dekker's (see Notifier): the waker stores its
// state and then loads the parked bit; the waiter sets the bit and then
// re-checks the state. Each side needs its store ordered before its load.
// With Go's atomic stores (XCHG) or a CAS that is free in the code and dear
// at run time: a locked instruction waits until the line it writes is owned
// by this core, and on a structure whose waiting peer polls that very line
// (a producer waiting for the slot a consumer is releasing) every item
// costs the waker a full cache-line round trip with its pipeline stopped.
// A release store (a plain MOV on amd64) does not wait: the line is fetched
// while the waker goes on. But then its load of the parked bit may be
// satisfied before the store is visible, and if the waiter's re-check also
// misses the store, both go their ways and the waiter sleeps through the
// wake.
//
// membarrier(2) moves the cost to the side that is about to sleep anyway.
// A waiter, after setting the parked bit and before re-checking, calls
// MEMBARRIER_CMD_GLOBAL_EXPEDITED, which returns only after every CPU
// running a thread of a process registered for it has executed a full
// barrier (and a thread not running passed through a context switch,
// which is one). So a waker in a registered process either had its load
// of the parked bit satisfied before the bit was set, and then its earlier
// store is visible to the waiter's re-check, or loads the bit after the
// barrier, and then sees it. Either way the wake cannot be lost, and the
// waker's hot path has no locked instruction.
//
// LightWakes registers the process, once; a structure that gets true may
// publish with release stores (internal/atomicx) followed by Waiting or
// Notify, provided every waiter that depends on such a store waits with
// Notifier.WaitPollFenced, which calls fenceParked after arming. The
// barrier costs about a microsecond per park here, and interrupts every
// CPU that runs a registered process, so a structure fences only the
// waits that need it: in the futex queue, the waits at a slot a live peer
// is finishing; its waits at an empty or full queue are woken after a
// cursor CAS, a locked instruction that orders the waker's load of the
// parked bit by itself. Where the kernel refuses (before Linux 4.16,
// or a seccomp filter), LightWakes is false and the process's wakers keep
// their locked instructions; and a waiter that cannot issue the barrier
// parks for at most unfencedPark at a time, so a light waker's wake that
// it missed costs that much latency, never a hang.

// membarrier(2) commands (linux/membarrier.h); x/sys/unix has only the
// system call number.
const (
	membarrierGlobalExpedited         = 1 << 1
	membarrierRegisterGlobalExpedited = 1 << 2
)

// unfencedPark bounds each park of a waiter whose barrier failed.
const unfencedPark = time.Millisecond

var (
	lightOnce stdsync.Once
	lightOK   bool
)

// LightWakes reports whether this process may publish state that a
// Notifier's waiters check with a release store instead of a sequentially
// consistent one (an XCHG or CAS), and then call Waiting or Notify: it
// registers the process for the waiters' barrier on first use. The answer
// never changes for the life of the process.
func LightWakes() bool {
	lightOnce.Do(func() {
		_, _, e := unix.Syscall(unix.SYS_MEMBARRIER, membarrierRegisterGlobalExpedited, 0, 0)
		lightOK = e == 0
	})
	return lightOK
}

// fenceParked is the waiter's half of a light wake: call it after setting
// the parked bit and before the re-check that decides to sleep. It returns
// how long the park that follows may last: timeout (0: no bound) when the
// barrier ran, at most unfencedPark when it could not.
func fenceParked(timeout time.Duration) time.Duration {
	if _, _, e := unix.Syscall(unix.SYS_MEMBARRIER, membarrierGlobalExpedited, 0, 0); e == 0 {
		return timeout
	}
	if timeout <= 0 || timeout > unfencedPark {
		return unfencedPark
	}
	return timeout
}
