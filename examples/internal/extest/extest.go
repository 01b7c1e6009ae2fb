// Package extest builds and runs the example commands in their tests: real
// binaries, real processes, real segments.
package extest

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/proc"
	"github.com/shmkit/shmkit/internal/testproc"
)

var (
	buildMu sync.Mutex
	built   = map[string]string{}
	dir     string
)

// Build compiles the example package pkg (an import path such as
// "github.com/shmkit/shmkit/examples/pipeline") once per test process and
// returns the binary's path. Under -race the binary is built with -race too.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	return build(t, pkg, "", pkg, filepath.Base(pkg))
}

// BuildDir compiles the main package in dir, a module of its own (a program
// as a user would write it, with its own go.mod), once per test process,
// and returns the binary's path.
func BuildDir(t testing.TB, dir, name string) string {
	t.Helper()
	return build(t, "dir:"+dir, dir, ".", name)
}

func build(t testing.TB, key, workdir, pkg, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := built[key]; ok {
		return bin
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "shmkit-extest-")
		if err != nil {
			t.Fatal(err)
		}
		dir = d // removed by Cleanup, from TestMain
	}
	gobin, err := testproc.GoTool()
	if err != nil {
		t.Skipf("no go command to build %s: %v", pkg, err)
	}
	bin := filepath.Join(dir, name)
	args := []string{"build", "-o", bin}
	if Race {
		args = append(args, "-race")
	}
	cmd := exec.Command(gobin, append(args, pkg)...)
	cmd.Dir = workdir
	if workdir != "" {
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", key, err, out)
	}
	built[key] = bin
	return bin
}

// Cleanup removes the binaries built by Build. Call it from TestMain after
// m.Run.
func Cleanup() {
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}

// Proc is a started example process with its output collected: a
// testproc.Proc (Pid, Done, Signal, Stdout, Stderr, WaitOutput, Kill) whose
// Wait fails the test on timeout and returns the exit code.
type Proc struct{ *testproc.Proc }

// Start starts bin with args. The process is SIGKILLed at test cleanup if it
// is still running, and dies with the test binary (Pdeathsig).
func Start(t testing.TB, bin string, args ...string) *Proc {
	t.Helper()
	return StartCmd(t, exec.Command(bin, args...))
}

// StartCmd starts a prepared command (Env, Dir may be set) with
// testproc.StartCmd.
func StartCmd(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	return &Proc{testproc.StartCmd(t, cmd)}
}

// Wait waits up to timeout for the process to exit and returns its exit
// code (-1 if a signal killed it). It fails the test on timeout.
func (p *Proc) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	if err := p.Proc.Wait(timeout); errors.Is(err, testproc.ErrTimeout) {
		t.Fatalf("%s %q still running after %v (killed)\nstdout:\n%s\nstderr:\n%s",
			filepath.Base(p.Cmd.Path), p.Cmd.Args[1:], timeout, p.Stdout(), p.Stderr())
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Children returns the pids of the live processes whose parent is pid.
func Children(pid int) []int {
	var kids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		cpid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, err := proc.Parent(int32(cpid)); err == nil && int(ppid) == pid {
			kids = append(kids, cpid)
		}
	}
	return kids
}

// Alive reports whether pid may still be running: proc.Alive, the one
// liveness check (a zombie is dead; doubt counts as alive).
func Alive(pid int) bool { return proc.Alive(proc.ID{PID: int32(pid)}) }

// ShmNames returns the entries of /dev/shm whose names start with prefix.
func ShmNames(prefix string) []string {
	ents, _ := os.ReadDir("/dev/shm")
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names
}

// Lines splits s into lines.
func Lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// SysVShmKeys returns the keys of the SysV shared-memory segments whose key
// lies in [lo, hi], from /proc/sysvipc/shm.
func SysVShmKeys(lo, hi uint32) map[uint32]bool {
	keys := map[uint32]bool{}
	b, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		return keys
	}
	for i, line := range Lines(string(b)) {
		f := strings.Fields(line)
		if i == 0 || len(f) == 0 {
			continue // header
		}
		k, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		if key := uint32(k); key >= lo && key <= hi {
			keys[key] = true
		}
	}
	return keys
}
