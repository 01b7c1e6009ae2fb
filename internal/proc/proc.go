// Package proc identifies processes across PID reuse and decides whether one
// is dead. It is the one liveness check of shmkit: ring roles, queue members,
// map shard locks, the robust Mutex's fallback, layout's creator check, the
// bus's subscriber records and shmctl all ask here.
//
// # Identity
//
// A PID alone does not name a process: after it exits, the kernel may hand
// the same number to an unrelated one. Shared structures therefore record an
// owner as (pid, start time), where start time is field 22 of
// /proc/PID/stat (clock ticks since boot). The pair is unique for the life of
// the boot. Where one CAS-able word must hold it, Word packs the pid into the
// high 22 bits (PID_MAX_LIMIT is 2^22) and the low 42 bits of the start time
// into the rest (centuries of uptime at 100 Hz).
//
// # Liveness: dead only on definite evidence
//
// Declaring a live holder dead lets a survivor run beside it (two lock
// holders, two ring producers). Declaring a dead one alive only makes a
// survivor wait longer. So Dead reports true only on definite evidence:
//
//   - the kernel says there is no such process (ESRCH from pidfd_open or
//     kill(pid, 0));
//   - /proc/PID/stat is readable and says the process is a zombie (it has
//     exited; it will never release anything), or gives a start time that
//     no longer matches the recorded one (the PID was reused).
//
// Everything else counts as alive: EPERM (another user's process exists),
// EMFILE (our fd table is full), /proc mounted with hidepid or not mounted,
// an unreadable or unparsable stat line. All processes sharing a structure
// must be in one PID namespace: a PID from another namespace names another
// process here.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// ID names one process for the lifetime of a boot.
type ID struct {
	PID   int32
	Start uint64 // start time in clock ticks since boot; 0 when unknown
}

// Zero reports whether the ID is unset.
func (id ID) Zero() bool { return id.PID == 0 }

func (id ID) String() string {
	return fmt.Sprintf("pid %d (start %d)", id.PID, id.Start)
}

// Word packing: pid in the high pidBits bits, the low StartBits bits of the
// start time below.
const (
	// StartBits is how many low bits of the start time a Word keeps.
	StartBits = 42
	startMask = 1<<StartBits - 1
	// MaxPID is the largest PID a Word can hold (the kernel's PID_MAX_LIMIT
	// is 2^22).
	MaxPID = 1<<(64-StartBits) - 1
)

// Word packs id into one word for a CAS-able owner field: 0 never names a
// process. A PID outside [1, MaxPID] packs to 0.
func (id ID) Word() uint64 {
	if id.PID <= 0 || id.PID > MaxPID {
		return 0
	}
	return uint64(id.PID)<<StartBits | id.Start&startMask
}

// FromWord unpacks a Word. Its Start holds the low StartBits bits of the
// start time, which is all Dead compares.
func FromWord(w uint64) ID {
	return ID{PID: int32(w >> StartBits), Start: w & startMask}
}

var (
	selfOnce sync.Once
	self     ID
)

// Self returns the calling process's ID. The value is computed once. If
// /proc is unreadable, Start is 0 and liveness checks of this process fall
// back to the PID alone.
func Self() ID {
	selfOnce.Do(func() {
		self.PID = int32(os.Getpid())
		self.Start, _ = StartTime(self.PID)
	})
	return self
}

// ErrNoProcess reports that the process does not exist.
var ErrNoProcess = errors.New("proc: no such process")

// StartTime reads the start time of pid from /proc/PID/stat.
func StartTime(pid int32) (uint64, error) {
	b, err := readStat(pid)
	if err != nil {
		return 0, err
	}
	_, st, err := parseStat(b)
	return st, err
}

// readStat reads /proc/PID/stat; a missing entry is ErrNoProcess.
func readStat(pid int32) ([]byte, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("proc: invalid pid %d", pid)
	}
	b, err := os.ReadFile(statPath(pid))
	if err != nil && errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %d", ErrNoProcess, pid)
	}
	return b, err
}

func statPath(pid int32) string { return "/proc/" + strconv.Itoa(int(pid)) + "/stat" }

// parseStat extracts the state (field 3) and start time (field 22) from a
// /proc/PID/stat line.
func parseStat(b []byte) (state byte, start uint64, err error) {
	fields, err := statFields(b)
	if err != nil {
		return 0, 0, err
	}
	// fields[0] is field 3 (state); start time is field 22.
	const idx = 22 - 3
	if len(fields) <= idx || len(fields[0]) == 0 {
		return 0, 0, errors.New("proc: short stat line")
	}
	start, err = strconv.ParseUint(string(fields[idx]), 10, 64)
	return fields[0][0], start, err
}

// statFields returns the fields of a /proc/PID/stat line from field 3 on.
// The command name (field 2) is parenthesized and may itself contain spaces
// and ')', so fields are counted from the last ')'.
func statFields(b []byte) ([][]byte, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, errors.New("proc: malformed stat line")
	}
	return bytes.Fields(b[i+1:]), nil
}

// Parent returns the parent PID of pid (field 4 of /proc/PID/stat). It is
// process information, not a liveness judgement.
func Parent(pid int32) (int32, error) {
	b, err := readStat(pid)
	if err != nil {
		return 0, err
	}
	fields, err := statFields(b)
	if err != nil {
		return 0, err
	}
	if len(fields) < 2 {
		return 0, errors.New("proc: short stat line")
	}
	ppid, err := strconv.ParseInt(string(fields[1]), 10, 32)
	return int32(ppid), err
}

// Dead reports whether the process named by id has certainly exited: see
// the package doc for what counts as evidence. An ID with PID <= 0 names no
// process and is dead; an ID with Start == 0 is judged by its PID alone.
func Dead(id ID) bool {
	if id.PID <= 0 {
		return true
	}
	switch exists(id.PID, false) {
	case absent:
		return true
	case unknown:
		return false
	}
	b, err := os.ReadFile(statPath(id.PID))
	if err != nil {
		return false // hidepid, EMFILE, no /proc: doubt
	}
	state, st, err := parseStat(b)
	if err != nil {
		return false
	}
	if state == 'Z' || state == 'X' {
		return true
	}
	return id.Start != 0 && st&startMask != id.Start&startMask
}

// Alive is !Dead: the process may still be running.
func Alive(id ID) bool { return !Dead(id) }

// ThreadDead reports whether no thread with this TID certainly exists (or it
// is a zombie). The robust Mutex's words hold keeper TIDs, not PIDs. A TID
// reused by an unrelated thread reads as alive: the error is towards waiting.
func ThreadDead(tid int32) bool {
	if tid <= 0 {
		return true
	}
	switch exists(tid, true) {
	case absent:
		return true
	case unknown:
		return false
	}
	b, err := os.ReadFile(statPath(tid))
	if err != nil {
		return false
	}
	state, _, err := parseStat(b)
	return err == nil && (state == 'Z' || state == 'X')
}

// NotThreadOf reports whether tid is certainly not a thread of process pid:
// /proc/PID is visible to us and has no task/TID, before and after the
// check (a process that exits meanwhile takes its task directory with it).
// It is false under any doubt: pid invisible (hidepid), /proc unreadable.
func NotThreadOf(pid, tid int32) bool {
	if pid <= 0 || tid <= 0 {
		return true
	}
	dir := "/proc/" + strconv.Itoa(int(pid)) + "/task"
	if _, err := os.Stat(dir); err != nil {
		return false
	}
	_, err := os.Stat(dir + "/" + strconv.Itoa(int(tid)))
	if !errors.Is(err, os.ErrNotExist) {
		return false
	}
	_, err = os.Stat(dir)
	return err == nil
}

type existence uint8

const (
	unknown existence = iota
	present
	absent
)

// exists asks the kernel whether a task with this id exists, without /proc.
// pidfd_open answers for any task (EINVAL: it exists but is not a thread-group
// leader, so for a TID it means present); kill(pid, 0) is the fallback when
// pidfd_open is unavailable or we are out of fds, and is trusted only for
// process IDs (newer kernels resolve kill's pid as a thread-group id, so a
// live non-leader thread may read as ESRCH).
func exists(id int32, thread bool) existence {
	fd, err := unix.PidfdOpen(int(id), 0)
	switch err {
	case nil:
		unix.Close(fd)
		return present
	case unix.ESRCH:
		return absent
	case unix.EINVAL:
		return present
	}
	if thread {
		return unknown
	}
	switch err := unix.Kill(int(id), 0); err {
	case nil, unix.EPERM:
		return present
	case unix.ESRCH:
		return absent
	}
	return unknown
}
