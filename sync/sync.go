// Package sync provides process-shared synchronization primitives that live
// inside shared-memory segments: a robust futex Mutex, a futex counting
// Semaphore, a Notifier (wait/notify with spin-then-park) and a SeqCount for
// lock-free readers, plus SemSet, a handle to a System V semaphore set.
//
// Mutex, Semaphore, Notifier and SeqCount are fixed-size, pointer-free
// structs made only of sized integers. Place them in a segment (inside a
// struct mapped over the segment's bytes), never copy them after first use,
// and use them from any goroutine of any process that maps the segment.
// Their zero value is ready to use (Semaphore: value 0). The methods take
// pointers into the mapping; the mapping must stay mapped while any call is
// in progress.
//
// # Robust mutex: the kernel robust list and the keeper thread
//
// A process-shared mutex is only as good as its answer to "what if the
// holder is SIGKILLed?". Linux answers with the robust futex list: each
// thread registers (set_robust_list) the head of a linked list threaded
// through the locks it holds; when the thread exits for any reason the
// kernel walks the list and, for every futex word whose TID field names the
// exiting thread, sets FUTEX_OWNER_DIED and wakes one waiter. The next
// locker sees the bit, takes the lock and learns that the protected data may
// be half-updated: Lock returns ErrOwnerDead while holding the lock, the
// caller repairs and calls MarkConsistent. Unlocking without that makes the
// mutex permanently unusable (ErrNotRecoverable for everyone), exactly like
// glibc's PTHREAD_MUTEX_ROBUST.
//
// The list is per OS thread, but a Go mutex is owned by a process, not a
// goroutine or thread: goroutines migrate between threads at any moment and
// any goroutine may unlock what another locked. So the thread whose TID goes
// into the word cannot be the caller's. Instead the process runs keeper
// goroutines, each locked to its own OS thread (runtime.LockOSThread), each
// having registered a robust list head in private (Go heap) memory, parked
// forever. A lock is taken by CASing the word from 0 to a keeper's TID,
// whatever thread the locking goroutine runs on, with the mutex registered
// on that keeper; the kernel processes a keeper's list when the keeper
// thread exits, which happens exactly when the process dies (a keeper never
// returns: a goroutine that exits while locked to its thread takes the
// thread down with it).
//
// The kernel treats a list head's list_op_pending entry like a list entry,
// so a keeper guarding a single lock needs no list at all: Lock stores the
// mutex's address in a free keeper's list_op_pending and CASes the word to
// that keeper's TID; Unlock swaps the word and clears the slot. Every
// instruction boundary is covered: before the CAS the word does not carry
// the keeper's TID, after it the pending slot names the mutex.
//
// Claiming a free keeper must not cost an atomic read-modify-write of its
// own (that made lock+unlock 2x a plain futex mutex). Keepers therefore
// belong to Ps (the runtime's processors): each P has up to 4, spawned on
// demand. Lock pins the goroutine to its P (runtime.procPin, as sync.Pool
// does), takes the first of that P's keepers whose pending slot is 0 with a
// plain store, and unpins before it CASes the word (a fault on shared
// memory must not happen while pinned: the runtime makes a panic there
// fatal). No other goroutine runs on the P meanwhile, so claimers of a
// slot are serialized; a slot returns to 0 only by its claimer (a failed
// CAS) or by the Unlock of the mutex it names, from any P, and nobody else
// writes a claimed slot. Lock leaves the
// keeper's position in the mutex's (otherwise unused) link field; Unlock
// starts from it and believes it only if that keeper's pending slot names
// the mutex and the word carries that keeper's TID, so a scribbled hint
// only sends Unlock to its slow path. So the fast path is the futex
// mutex's CAS and swap plus a few plain loads and stores (about 2x a plain
// futex mutex; see BenchmarkRobustOverhead). Keepers are OS threads: a
// process has one per P that ever locked, more only while several locks
// are held on one P at once.
//
// When all of a P's keepers are busy, the lock goes on keeper 0's real
// linked list, whose link/unlink is serialized in process because
// list_op_pending is a single slot: that pending slot itself is the
// in-process lock (CAS 0 -> entry). The list entry (a "next" address, valid
// only in the holder's address space) is the first field of the Mutex; only
// the holder writes it. Unlink never follows pointers read from shared
// memory: the process keeps a private mirror of what it linked, so a peer
// scribbling the segment can break only its own locks, not make this
// process write through a garbage pointer. Entries are addresses of locks
// this process holds, linked only after the CAS made it the holder and
// unlinked before the word is released, so there is no ABA.
//
// The kernel only marks words still carrying the dead thread's TID, and a
// list can be broken by a peer, or deliberately by ForgetRange. So the
// kernel is the fast detector (it woke waiters within a millisecond in our
// tests) and there is a fallback: a blocked Lock wakes every DeadOwnerPoll
// and checks whether the thread named in the word still exists
// (/proc/TID/stat; zombies count as dead). A live process's keeper threads
// always exist, so the check can only err towards waiting (when the TID was
// reused by an unrelated thread, which pid_max 32768 makes possible), never
// towards two holders. That is also why the holder's pid and start time
// (proc.ID), stored in the mutex after acquisition, serve diagnostics
// (State, shmctl doctor) but not the takeover decision: in the instant
// after a CAS they still describe the previous holder.
//
// Unmapping a segment while this process holds a Mutex in it leaves a
// keeper pointing into the dead mapping. Unlock every Mutex in a segment
// (or call ForgetRange) before unmapping it. Lock and Unlock a Mutex
// through the same mapping: a process that maps a segment twice holds a
// lock at one address, and Unlock through the other panics.
//
// Words hold TIDs as seen from the locker's PID namespace, as for glibc's
// robust mutexes: all processes sharing a Mutex must be in one PID
// namespace, or the /proc fallback would misjudge a holder in another one.
//
// # Waiting: one loop, one wait/notify word
//
// Every blocking call in shmkit (ring, byte ring, queue, bus, Mutex, WaitSet)
// runs the same loop, sized by a WaitPolicy: spin, yield, park. A FUTEX_WAKE
// costs ~250 ns even when nobody waits, so Notifier.Notify and Semaphore.Post
// skip it unless a waiter has announced itself. This is the Dekker pattern:
// the waiter announces itself, then re-checks the condition; the waker
// publishes the condition, then reads the announcement. Go's sync/atomic
// operations are sequentially consistent, so in the single total order
// either the waker sees the announcement (and wakes) or the waiter sees the
// condition (and does not sleep). The futex word itself closes the remaining
// window: FUTEX_WAIT sleeps only if the word still holds the value the waiter
// saw, and the waker changes the word before waking.
//
// The Notifier's announcement is a bit, not a count, so a waiter SIGKILLed
// while parked costs its peers at most one spurious wake (see Notifier).
// The Semaphore still counts its waiters: a waiter killed while parked
// leaves its count one too high, which costs a spurious FUTEX_WAKE per post,
// never a lost wakeup.
//
// WaitSet parks on the words of several Notifiers at once (futex_waitv).
//
// # System V semaphores and SEM_UNDO
//
// SemSet wraps semget/semop/semtimedop/semctl. SEM_UNDO makes the kernel
// reverse a process's net adjustment when it exits, which is what a lock
// wants (a killed holder's P is undone, so the lock is released), and what a
// counting semaphore must not have: undoing a dead producer's V would
// un-count items it really produced, and undoing a consumer's P would
// resurrect items it really consumed. Use SemOp.Undo only on semaphores used
// as locks.
//
// # The race detector
//
// The race detector does not see memory outside the Go heap: atomics in a
// segment create no happens-before edge for it. Under -race, Mutex and
// Semaphore tell it about the edge with runtime.RaceAcquire /
// RaceRelease on a Go-heap shadow byte keyed by the primitive's address, so
// Go data guarded by a shared lock gives no false reports. In normal builds
// this is compiled out.
package sync

import (
	"errors"

	"github.com/shmkit/shmkit/layout"
)

// Re-exported sentinel errors (defined in package layout).
var (
	// ErrOwnerDead: the previous holder died holding the lock. The caller
	// now holds it, must repair the protected data, call MarkConsistent and
	// then Unlock.
	ErrOwnerDead = layout.ErrOwnerDead
	// ErrNotRecoverable: a lock whose owner died was unlocked without
	// MarkConsistent; it can never be acquired again.
	ErrNotRecoverable = layout.ErrNotRecoverable
)

// ErrRemoved reports that a SemSet was removed (EIDRM, or EINVAL for an
// identifier that no longer exists). Errors returned by SemSet wrap it and
// the errno.
var ErrRemoved = errors.New("shmkit/sync: semaphore set removed")

// ErrWouldBlock is returned (wrapped together with unix.EAGAIN) by
// SemSet.Op when an operation with NoWait cannot proceed immediately.
var ErrWouldBlock = errors.New("shmkit/sync: operation would block")

// ErrOverflow is returned by Semaphore.Post when the value is already
// SemValueMax.
var ErrOverflow = errors.New("shmkit/sync: semaphore value overflow")
