// Package sysv wraps the System V IPC semaphore and message-queue system
// calls (semget, semop, semtimedop, semctl, msgget, msgsnd, msgrcv, msgctl),
// which golang.org/x/sys/unix does not wrap (it has only the SYS_* numbers).
//
// Blocking calls (Semop, Semtimedop, Msgsnd, Msgrcv without IPC_NOWAIT) go
// through unix.Syscall6 so the Go runtime can hand the P to another thread
// while this one is blocked in the kernel. They return EINTR when a signal
// (such as the runtime's preemption signal) interrupts them; SysV IPC calls
// are never restarted by SA_RESTART, so callers loop.
//
// SEM_UNDO adjustments are kept per process (Go's threads share
// CLONE_SYSVSEM), so a P on one thread and a V on another balance out, and
// the kernel applies the net adjustment when the process exits.
package sysv

import "golang.org/x/sys/unix"

// Sembuf is struct sembuf: one operation of a semop call.
type Sembuf struct {
	Num uint16 // semaphore index within the set
	Op  int16  // >0 add, <0 wait until it can subtract, 0 wait for zero
	Flg int16  // IPC_NOWAIT, SEM_UNDO
}

// Flags and commands from linux/ipc.h and linux/sem.h.
const (
	IPC_CREAT   = 0o1000
	IPC_EXCL    = 0o2000
	IPC_NOWAIT  = 0o4000
	IPC_PRIVATE = 0

	IPC_RMID = 0
	IPC_SET  = 1
	IPC_STAT = 2

	SEM_UNDO = 0x1000

	GETPID  = 11
	GETVAL  = 12
	GETALL  = 13
	GETNCNT = 14
	GETZCNT = 15
	SETVAL  = 16
	SETALL  = 17

	MSG_NOERROR = 0o10000

	// SEMVMX is the largest value a semaphore may hold.
	SEMVMX = 32767
)

// Errno values callers commonly test for.
var (
	EIDRM  error = unix.EIDRM
	EINVAL error = unix.EINVAL
	EAGAIN error = unix.EAGAIN
	EINTR  error = unix.EINTR
)
