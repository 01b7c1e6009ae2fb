// Package crashpoint lets tests SIGKILL a process at a named instruction.
//
// Library code marks the dangerous windows of its protocols:
//
//	if crashpoint.Enabled {
//		crashpoint.Hit("ring.claimed-not-published")
//	}
//
// In normal runs Enabled is false and the check is one predictable branch on
// a global. A test child run with SHMKIT_CRASHPOINT=NAME[:N] kills itself with
// SIGKILL the Nth time (default 1st) it reaches NAME, so crash tests can
// stop a peer exactly inside a window instead of hoping a random kill lands
// there.
package crashpoint

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// Env is the environment variable that arms a crash point.
const Env = "SHMKIT_CRASHPOINT"

// Enabled is true when a crash point is armed in this process.
var Enabled bool

var (
	armed     string
	remaining atomic.Int64
)

func init() {
	spec := os.Getenv(Env)
	if spec == "" {
		return
	}
	name, count := spec, int64(1)
	if i := strings.LastIndexByte(spec, ':'); i >= 0 {
		if n, err := strconv.ParseInt(spec[i+1:], 10, 64); err == nil && n > 0 {
			name, count = spec[:i], n
		}
	}
	armed = name
	remaining.Store(count)
	Enabled = true
}

// Hit kills the process with SIGKILL if name is the armed crash point and
// this is the chosen hit.
func Hit(name string) {
	if name != armed {
		return
	}
	if remaining.Add(-1) == 0 {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL is not deliverable late; never return
	}
}

// Arm returns the environment entry that arms name at its nth hit, for a
// child's exec.Cmd.Env.
func Arm(name string, nth int) string {
	return Env + "=" + name + ":" + strconv.Itoa(nth)
}
