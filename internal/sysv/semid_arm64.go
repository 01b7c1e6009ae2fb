package sysv

import "golang.org/x/sys/unix"

// SemidDS is struct semid64_ds on linux/arm64 (asm-generic/sembuf.h, 64-bit).
type SemidDS struct {
	Perm  unix.SysvIpcPerm
	Otime int64 // last semop time (seconds), 0 if never
	Ctime int64 // last change time
	Nsems uint64
	_     uint64
	_     uint64
}
