package segment

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Origin is what the kernel says about how recently an object was made.
// Package layout uses it to tell a creator that has only just created (and
// is still sizing) an object, which is worth waiting for, from an object
// that is empty or all zero because it never was a shmkit segment.
type Origin struct {
	// Changed is the object's last status change: for posix, file and
	// memfd objects the inode's ctime (set by creation, ftruncate,
	// fallocate and chmod, so by every step of Create before the first
	// byte is written); for sysv the segment's shm_ctime (creation or the
	// last IPC_SET; whole seconds).
	Changed time.Time
	// CreatorPID is the process that created a sysv segment (shm_cpid); 0
	// for the other backends, whose kernels do not record it.
	CreatorPID int32
}

// Origin reports the kernel's record of the object behind s (see Origin).
func (s *Segment) Origin() (Origin, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Origin{}, fmt.Errorf("segment %s: origin: %w", s.spec, errClosed)
	}
	if s.sysv {
		var d unix.SysvShmDesc
		if _, err := unix.SysvShmCtl(s.shmID, unix.IPC_STAT, &d); err != nil {
			return Origin{}, pathErr("stat", s.spec, fmt.Errorf("shmctl IPC_STAT: %w", err))
		}
		return Origin{Changed: time.Unix(d.Ctime, 0), CreatorPID: d.Cpid}, nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(s.file.Fd()), &st); err != nil {
		return Origin{}, pathErr("stat", s.spec, fmt.Errorf("fstat: %w", err))
	}
	return statOrigin(&st), nil
}

func statOrigin(st *unix.Stat_t) Origin {
	return Origin{Changed: time.Unix(st.Ctim.Unix())}
}

var errClosed = errors.New("segment is closed")

// EmptyError is the error of an Open that found an object of size zero. It
// matches ErrEmptyObject through errors.Is; Origin says how recently the
// object was made (a creator sizes a new object right after creating it).
type EmptyError struct {
	Origin Origin
}

func (e *EmptyError) Error() string { return ErrEmptyObject.Error() }

// Unwrap makes errors.Is(err, ErrEmptyObject) hold.
func (e *EmptyError) Unwrap() error { return ErrEmptyObject }
