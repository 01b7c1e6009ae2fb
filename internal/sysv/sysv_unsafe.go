package sysv

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func errno(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// Semget returns the identifier of the semaphore set for key, creating it
// when flags include IPC_CREAT (flags also carry the permission bits).
func Semget(key int32, nsems int, flags int) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_SEMGET, uintptr(key), uintptr(nsems), uintptr(flags))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// Semop applies ops atomically, blocking until all can proceed (unless an
// op has IPC_NOWAIT). It returns EINTR on a signal; the caller retries.
func Semop(id int, ops []Sembuf) error {
	if len(ops) == 0 {
		return unix.EINVAL
	}
	_, _, e := unix.Syscall(unix.SYS_SEMOP, uintptr(id), uintptr(unsafe.Pointer(&ops[0])), uintptr(len(ops)))
	return errno(e)
}

// Semtimedop is Semop with a relative timeout (<= 0: none). On timeout it
// returns EAGAIN, like an IPC_NOWAIT failure.
func Semtimedop(id int, ops []Sembuf, timeout time.Duration) error {
	if len(ops) == 0 {
		return unix.EINVAL
	}
	var tsp unsafe.Pointer
	var ts unix.Timespec
	if timeout > 0 {
		ts = unix.NsecToTimespec(int64(timeout))
		tsp = unsafe.Pointer(&ts)
	}
	_, _, e := unix.Syscall6(unix.SYS_SEMTIMEDOP, uintptr(id), uintptr(unsafe.Pointer(&ops[0])), uintptr(len(ops)), uintptr(tsp), 0, 0)
	return errno(e)
}

// Semctl performs a semctl command whose argument is an integer (or unused):
// GETVAL, SETVAL, GETPID, GETNCNT, GETZCNT, IPC_RMID.
func Semctl(id, semnum, cmd int, arg int) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), uintptr(semnum), uintptr(cmd), uintptr(arg), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// SemctlGetAll reads every semaphore of the set into vals, which must have
// at least nsems elements.
func SemctlGetAll(id int, vals []uint16) error {
	if len(vals) == 0 {
		return unix.EINVAL
	}
	_, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, GETALL, uintptr(unsafe.Pointer(&vals[0])), 0, 0)
	return errno(e)
}

// SemctlSetAll sets every semaphore of the set from vals (nsems elements).
func SemctlSetAll(id int, vals []uint16) error {
	if len(vals) == 0 {
		return unix.EINVAL
	}
	_, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, SETALL, uintptr(unsafe.Pointer(&vals[0])), 0, 0)
	return errno(e)
}

// SemctlStat returns the set's IPC_STAT record.
func SemctlStat(id int) (SemidDS, error) {
	var ds SemidDS
	_, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, IPC_STAT, uintptr(unsafe.Pointer(&ds)), 0, 0)
	return ds, errno(e)
}

// Msgget returns the identifier of the message queue for key, creating it
// when flags include IPC_CREAT.
func Msgget(key int32, flags int) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_MSGGET, uintptr(key), uintptr(flags), 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// Msgsnd sends msg, which is a struct msgbuf: an 8-byte native-endian
// message type (> 0) followed by the payload. len(msg) must be >= 8.
func Msgsnd(id int, msg []byte, flags int) error {
	if len(msg) < 8 {
		return unix.EINVAL
	}
	_, _, e := unix.Syscall6(unix.SYS_MSGSND, uintptr(id), uintptr(unsafe.Pointer(&msg[0])), uintptr(len(msg)-8), uintptr(flags), 0, 0)
	return errno(e)
}

// Msgrcv receives a message of type typ (0: any) into buf (8-byte type
// followed by room for the payload) and returns the payload length.
func Msgrcv(id int, buf []byte, typ int64, flags int) (int, error) {
	if len(buf) < 8 {
		return 0, unix.EINVAL
	}
	r, _, e := unix.Syscall6(unix.SYS_MSGRCV, uintptr(id), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)-8), uintptr(typ), uintptr(flags), 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// MsgctlRmid removes the message queue.
func MsgctlRmid(id int) error {
	_, _, e := unix.Syscall(unix.SYS_MSGCTL, uintptr(id), IPC_RMID, 0)
	return errno(e)
}
