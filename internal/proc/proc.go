// Package proc identifies processes across PID reuse.
//
// A PID alone does not name a process: after it exits, the kernel may hand
// the same number to an unrelated one. Shared structures therefore record an
// owner as (pid, start time), where start time is field 22 of
// /proc/PID/stat (clock ticks since boot). The pair is unique for the life of
// the boot.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
)

// ID names one process for the lifetime of a boot.
type ID struct {
	PID   int32
	Start uint64 // start time in clock ticks since boot
}

// Zero reports whether the ID is unset.
func (id ID) Zero() bool { return id.PID == 0 }

func (id ID) String() string {
	return fmt.Sprintf("pid %d (start %d)", id.PID, id.Start)
}

var (
	selfOnce sync.Once
	self     ID
	selfErr  error
)

// Self returns the calling process's ID. The value is computed once.
func Self() ID {
	selfOnce.Do(func() {
		pid := int32(os.Getpid())
		var st uint64
		st, selfErr = StartTime(pid)
		self = ID{PID: pid, Start: st}
	})
	if selfErr != nil {
		// /proc is unreadable: fall back to a PID-only identity rather than
		// failing every structure; liveness then degrades to kill(pid, 0).
		return ID{PID: self.PID}
	}
	return self
}

// ErrNoProcess reports that the process does not exist.
var ErrNoProcess = errors.New("proc: no such process")

// StartTime reads the start time of pid from /proc/PID/stat.
func StartTime(pid int32) (uint64, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("proc: invalid pid %d", pid)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("%w: %d", ErrNoProcess, pid)
		}
		return 0, err
	}
	return parseStartTime(b)
}

// parseStartTime extracts field 22 from a /proc/PID/stat line. The command
// name (field 2) is parenthesized and may itself contain spaces and ')', so
// fields are counted from the last ')'.
func parseStartTime(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("proc: malformed stat line")
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state); start time is field 22.
	const idx = 22 - 3
	if len(fields) <= idx {
		return 0, errors.New("proc: short stat line")
	}
	return strconv.ParseUint(string(fields[idx]), 10, 64)
}

// Alive reports whether the process named by id is still running. A zombie
// (exited, not yet reaped) counts as dead: it will never release anything.
// An ID with no start time (Start == 0) is checked by PID alone.
func Alive(id ID) bool {
	if id.PID <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(id.PID)) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return false
	}
	fields := bytes.Fields(b[i+1:])
	if len(fields) == 0 || fields[0][0] == 'Z' || fields[0][0] == 'X' {
		return false
	}
	if id.Start == 0 {
		return true
	}
	st, err := parseStartTime(b)
	return err == nil && st == id.Start
}
