//go:build !linux

package proc

// shmkit is built on Linux-only system calls (futex, memfd, SysV shm,
// pidfd): building it for another GOOS fails here, with this name as the
// error, before the errors of the calls that do not exist there.
type _ shmkit_supports_linux_only
