package sync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmkit/shmkit/internal/sysv"
	"github.com/shmkit/shmkit/segment"
)

// SemSet is a handle to a System V semaphore set. Unlike the other types of
// this package it is an ordinary Go value (it does not live in shared
// memory); the set itself lives in the kernel until Remove. Methods may be
// called concurrently.
//
// Initialization race: semget creates the set with all values 0. The
// creator should SetAll before telling peers the key; a peer that may open
// the set before that must coordinate some other way.
type SemSet struct {
	id    int
	nsems int
	key   int32
}

// SemOp is one operation of SemSet.Op.
type SemOp struct {
	Num   uint16 // semaphore index
	Delta int16  // > 0: add (V); < 0: wait until it can subtract (P); 0: wait for zero
	// Undo (SEM_UNDO): the kernel reverses this adjustment when the process
	// exits. Only for semaphores used as locks; never for counting ones.
	Undo bool
	// NoWait (IPC_NOWAIT): fail with ErrWouldBlock instead of blocking.
	NoWait bool
}

// opPollSlice bounds each semtimedop when Op must notice cancellation.
const opPollSlice = 20 * time.Millisecond

// CreateSemSet creates a semaphore set of nsems semaphores (all 0) for key
// with permission bits mode. It fails with an error matching fs.ErrExist if
// a set exists for key. Key 0 (IPC_PRIVATE) always creates a new set; pass
// its ID to peers (OpenSemSetID).
func CreateSemSet(key int32, nsems int, mode os.FileMode) (*SemSet, error) {
	if nsems <= 0 {
		return nil, fmt.Errorf("shmkit/sync: create semaphore set: nsems %d <= 0", nsems)
	}
	id, err := sysv.Semget(key, nsems, sysv.IPC_CREAT|sysv.IPC_EXCL|int(mode.Perm()))
	if err != nil {
		return nil, fmt.Errorf("shmkit/sync: create semaphore set (key %#x): %w", uint32(key), err)
	}
	return &SemSet{id: id, nsems: nsems, key: key}, nil
}

// OpenSemSet opens the existing semaphore set for key. It fails with an
// error matching fs.ErrNotExist if there is none.
func OpenSemSet(key int32) (*SemSet, error) {
	id, err := sysv.Semget(key, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("shmkit/sync: open semaphore set (key %#x): %w", uint32(key), err)
	}
	s, err := OpenSemSetID(id)
	if err != nil {
		return nil, err
	}
	s.key = key
	return s, nil
}

// OpenSemSetID opens the semaphore set with kernel identifier id (as
// returned by ID, for example of an IPC_PRIVATE set).
func OpenSemSetID(id int) (*SemSet, error) {
	ds, err := sysv.SemctlStat(id)
	if err != nil {
		return nil, semErr("stat", err)
	}
	return &SemSet{id: id, nsems: int(ds.Nsems)}, nil
}

// Ftok computes a System V IPC key from a file's inode and device numbers
// and id, with glibc's formula, so that a semaphore set and a sysv:ftok:
// segment named by the same file agree. It is segment.Ftok (the one
// implementation), here so SemSet users need not import segment.
func Ftok(path string, id uint8) (int32, error) { return segment.Ftok(path, id) }

// Len returns the number of semaphores in the set.
func (s *SemSet) Len() int { return s.nsems }

// ID returns the kernel identifier of the set.
func (s *SemSet) ID() int { return s.id }

// Key returns the key the set was created or opened with (0 if by ID).
func (s *SemSet) Key() int32 { return s.key }

func semErr(op string, err error) error {
	if errors.Is(err, unix.EIDRM) || errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("shmkit/sync: semaphore set %s: %w (%w)", op, ErrRemoved, err)
	}
	return fmt.Errorf("shmkit/sync: semaphore set %s: %w", op, err)
}

func (s *SemSet) checkIndex(i int) error {
	if i < 0 || i >= s.nsems {
		return fmt.Errorf("shmkit/sync: semaphore index %d out of range [0,%d)", i, s.nsems)
	}
	return nil
}

// Op applies ops atomically: either all of them happen or, while any
// cannot, none does and the call blocks (or fails with ErrWouldBlock if an
// op that cannot proceed has NoWait).
//
// Blocking honours ctx: without a Done channel it blocks in semop; with one
// it blocks in semtimedop slices of at most 20 ms (SysV semaphores offer
// nothing else to wait on together with a cancellation), re-checking ctx
// between slices, and bounded by ctx's deadline. So cancellation is noticed
// within ~20 ms and a deadline exactly; a waiter re-queues in the kernel
// every slice, so it may lose its place among other blocked waiters. Returns ctx.Err() when ctx ends
// first, an error wrapping ErrRemoved if the set is removed (also while
// blocked), or ErrWouldBlock (wrapping unix.EAGAIN too).
func (s *SemSet) Op(ctx context.Context, ops ...SemOp) error {
	if len(ops) == 0 {
		return nil
	}
	var small [4]sysv.Sembuf
	buf := small[:0]
	if len(ops) > len(small) {
		buf = make([]sysv.Sembuf, 0, len(ops))
	}
	noWait := false
	for _, o := range ops {
		if err := s.checkIndex(int(o.Num)); err != nil {
			return err
		}
		b := sysv.Sembuf{Num: o.Num, Op: o.Delta}
		if o.Undo {
			b.Flg |= sysv.SEM_UNDO
		}
		if o.NoWait {
			b.Flg |= sysv.IPC_NOWAIT
			noWait = true
		}
		buf = append(buf, b)
	}
	var done <-chan struct{}
	if ctx != nil {
		done = ctx.Done()
	}
	if done == nil {
		for {
			err := sysv.Semop(s.id, buf)
			if err == nil {
				return nil
			}
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return s.opErr(err)
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		slice := opPollSlice
		if dl, ok := ctx.Deadline(); ok {
			left := time.Until(dl)
			if left <= 0 {
				return context.DeadlineExceeded
			}
			slice = min(slice, left)
		}
		start := time.Now()
		err := sysv.Semtimedop(s.id, buf, slice)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			// EAGAIN is both "timed out" and "a NoWait op would block";
			// only the latter returns before the slice has elapsed.
			if noWait && time.Since(start) < slice {
				return s.opErr(err)
			}
		default:
			return s.opErr(err)
		}
	}
}

func (s *SemSet) opErr(err error) error {
	if errors.Is(err, unix.EAGAIN) {
		return fmt.Errorf("shmkit/sync: semop: %w (%w)", ErrWouldBlock, err)
	}
	return semErr("op", err)
}

// SetVal sets semaphore i to v (0..32767), waking waiters as needed and
// clearing every process's undo adjustment for it.
func (s *SemSet) SetVal(i int, v int) error {
	if err := s.checkIndex(i); err != nil {
		return err
	}
	if v < 0 || v > sysv.SEMVMX {
		return fmt.Errorf("shmkit/sync: semaphore value %d out of range [0,%d]", v, sysv.SEMVMX)
	}
	if _, err := sysv.Semctl(s.id, i, sysv.SETVAL, v); err != nil {
		return semErr("setval", err)
	}
	return nil
}

// GetVal returns the value of semaphore i.
func (s *SemSet) GetVal(i int) (int, error) {
	if err := s.checkIndex(i); err != nil {
		return 0, err
	}
	v, err := sysv.Semctl(s.id, i, sysv.GETVAL, 0)
	if err != nil {
		return 0, semErr("getval", err)
	}
	return v, nil
}

// SetAll sets every semaphore; len(vals) must equal Len().
func (s *SemSet) SetAll(vals []uint16) error {
	if len(vals) != s.nsems {
		return fmt.Errorf("shmkit/sync: SetAll with %d values for %d semaphores", len(vals), s.nsems)
	}
	for _, v := range vals {
		if v > sysv.SEMVMX {
			return fmt.Errorf("shmkit/sync: semaphore value %d out of range [0,%d]", v, sysv.SEMVMX)
		}
	}
	if err := sysv.SemctlSetAll(s.id, vals); err != nil {
		return semErr("setall", err)
	}
	return nil
}

// GetAll returns every semaphore's value.
func (s *SemSet) GetAll() ([]uint16, error) {
	vals := make([]uint16, s.nsems)
	if err := sysv.SemctlGetAll(s.id, vals); err != nil {
		return nil, semErr("getall", err)
	}
	return vals, nil
}

// Waiting returns how many processes are blocked waiting for semaphore i to
// increase (GETNCNT).
func (s *SemSet) Waiting(i int) (int, error) {
	if err := s.checkIndex(i); err != nil {
		return 0, err
	}
	v, err := sysv.Semctl(s.id, i, sysv.GETNCNT, 0)
	if err != nil {
		return 0, semErr("getncnt", err)
	}
	return v, nil
}

// WaitingZero returns how many processes are blocked waiting for semaphore
// i to become zero (GETZCNT).
func (s *SemSet) WaitingZero(i int) (int, error) {
	if err := s.checkIndex(i); err != nil {
		return 0, err
	}
	v, err := sysv.Semctl(s.id, i, sysv.GETZCNT, 0)
	if err != nil {
		return 0, semErr("getzcnt", err)
	}
	return v, nil
}

// Remove removes the set from the system. Processes blocked in Op wake
// with an error wrapping ErrRemoved, as do later calls on any handle.
func (s *SemSet) Remove() error {
	if _, err := sysv.Semctl(s.id, 0, sysv.IPC_RMID, 0); err != nil {
		return semErr("remove", err)
	}
	return nil
}
