package shmqueue

import "golang.org/x/sys/unix"

// schedYield gives the CPU to another runnable thread or process, if any.
func schedYield() { _, _, _ = unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

// spinPause burns a few cycles between re-checks of shared words without
// giving up the thread, so a waiter does not hammer the cache line it
// watches. (Go exposes no PAUSE instruction; a short loop in a function the
// compiler may not inline or elide is the portable stand-in.) The result
// is meaningless; callers accumulate it so the call has a use.
//
//go:noinline
func spinPause() int {
	s := 0
	for i := 0; i < 20; i++ {
		s += i
	}
	return s
}
