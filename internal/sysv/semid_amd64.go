package sysv

import "golang.org/x/sys/unix"

// SemidDS is struct semid64_ds on linux/amd64 (arch/x86/include/uapi/asm/sembuf.h).
type SemidDS struct {
	Perm  unix.SysvIpcPerm
	Otime int64 // last semop time (seconds), 0 if never
	_     uint64
	Ctime int64 // last change time
	_     uint64
	Nsems uint64
	_     uint64
	_     uint64
}
