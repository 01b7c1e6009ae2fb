package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// POSIX message queues through the raw system calls (glibc's mq_open is a
// thin wrapper: it strips the leading '/' and passes a struct mq_attr). A
// queue descriptor is a file descriptor, so it passes to children through
// exec.Cmd.ExtraFiles like any other file.

// mqAttr is the kernel's struct mq_attr.
type mqAttr struct {
	Flags, MaxMsg, MsgSize, CurMsgs int64
	_                               [4]int64
}

// mqOpen creates (O_EXCL) a queue of maxMsg messages of up to msgSize
// bytes. name has no leading slash.
func mqOpen(name string, maxMsg, msgSize int) (*os.File, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return nil, err
	}
	attr := mqAttr{MaxMsg: int64(maxMsg), MsgSize: int64(msgSize)}
	fd, _, e := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(p)),
		uintptr(unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC), 0o600, uintptr(unsafe.Pointer(&attr)), 0, 0)
	if e != 0 {
		return nil, &os.PathError{Op: "mq_open", Path: "/" + name, Err: e}
	}
	return os.NewFile(fd, "mq:/"+name), nil
}

func mqUnlink(name string) error {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	if _, _, e := unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(p)), 0, 0); e != 0 {
		return e
	}
	return nil
}

// mqSend sends msg (blocking while the queue is full), retrying on EINTR.
func mqSend(fd uintptr, msg []byte) error {
	for {
		_, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDSEND, fd, uintptr(unsafe.Pointer(unsafe.SliceData(msg))), uintptr(len(msg)), 0, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return os.NewSyscallError("mq_timedsend", e)
		}
		return nil
	}
}

// mqReceive receives the oldest message into buf (which must hold the
// queue's message size), blocking while the queue is empty.
func mqReceive(fd uintptr, buf []byte) (int, error) {
	for {
		n, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDRECEIVE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(buf))), uintptr(len(buf)), 0, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, os.NewSyscallError("mq_timedreceive", e)
		}
		return int(n), nil
	}
}

// mqMaxMsg is the queue depth an unprivileged process may ask for
// (/proc/sys/fs/mqueue/msg_max, 10 by default).
func mqMaxMsg() int {
	b, err := os.ReadFile("/proc/sys/fs/mqueue/msg_max")
	if err != nil {
		return 10
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 1 {
		return 10
	}
	return n
}
