// Package futex wraps the Linux futex system calls that shmkit's
// process-shared primitives are built on: FUTEX_WAIT / FUTEX_WAKE on words in
// shared mappings, futex_waitv for context cancellation, and the robust-list
// registration (set_robust_list) used by the robust mutex.
//
// Every call here uses the shared (non-PRIVATE) futex namespace, because the
// words live in MAP_SHARED memory that other processes map at other
// addresses; FUTEX_PRIVATE_FLAG would key the wait queue by this process's
// mm and a peer's FUTEX_WAKE would never find the waiter. The one exception
// is the process-local cancel word of WaitContext, which lives in the Go heap.
//
// Blocking calls go through unix.Syscall6, never RawSyscall6: the runtime
// must know the thread is blocked so it can hand the P to another thread
// (RawSyscall6 hung a whole process in our measurements). Each parked waiter
// therefore holds one OS thread for as long as it is parked.
//
// Results: Wait and WaitContext return nil when woken by FUTEX_WAKE, and
// distinct sentinel errors otherwise (ErrAgain, ErrInterrupted, ErrTimeout).
// Callers treat every return as a possibly spurious wakeup and re-check
// their condition in a loop (the gVisor flipcall / glibc pattern).
package futex

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Futex operation codes and word bits (linux/futex.h). x/sys/unix has only
// the syscall numbers.
const (
	opWait       = 0
	opWake       = 1
	opWaitBitset = 9
	opWakeBitset = 10

	privateFlag       = 128
	clockRealtimeFlag = 256

	bitsetMatchAny = 0xffffffff

	// futex_waitv flags (FUTEX2_*).
	waitv32      = 0x02
	waitvPrivate = 128

	// Waiters is set in a robust mutex word when some thread may be blocked
	// in FUTEX_WAIT on it; the kernel wakes one waiter when it marks the
	// word OwnerDied at the holder's death.
	Waiters uint32 = 0x80000000
	// OwnerDied is set by the kernel (robust-list walk at thread exit) in a
	// word whose TID field names the exiting thread.
	OwnerDied uint32 = 0x40000000
	// TIDMask selects the owner thread ID in a robust mutex word.
	TIDMask uint32 = 0x3fffffff
)

// Sentinel results of Wait. They are the raw errno values, so errors.Is
// with unix.EAGAIN etc. also works.
var (
	// ErrAgain: *addr did not hold val when the kernel checked (the state
	// changed before we slept). Not an error: re-check and retry.
	ErrAgain error = unix.EAGAIN
	// ErrInterrupted: a signal (the Go runtime's preemption SIGURG, say)
	// interrupted the wait. Re-check and retry.
	ErrInterrupted error = unix.EINTR
	// ErrTimeout: the timeout elapsed.
	ErrTimeout error = unix.ETIMEDOUT
)

// ErrNoWaitv reports that the kernel lacks futex_waitv (Linux < 5.16);
// WaitContext then falls back to polling FUTEX_WAIT in short slices.
var ErrNoWaitv = errors.New("futex: futex_waitv not supported")

// RobustListHead is the per-thread robust list head registered with
// set_robust_list (struct robust_list_head in linux/futex.h). It must live
// in memory that never moves and is never freed while registered: a
// package-level variable. Next and ListOpPending hold user-space addresses
// (of list entries inside shared mappings), not Go pointers.
type RobustListHead struct {
	// Next is the address of the first entry, or of the head itself when
	// the list is empty (the list is circular through the head).
	Next uint64
	// FutexOffset is the offset from an entry's address to its futex word.
	FutexOffset int64
	// ListOpPending is the address of an entry being linked or unlinked,
	// or 0. The kernel inspects it at thread exit too, covering a death
	// between taking a lock and linking it (or unlinking and releasing).
	ListOpPending uint64
}
