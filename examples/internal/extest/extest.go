// Package extest builds and runs the example commands in their tests: real
// binaries, real processes, real segments.
package extest

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := built[pkg]; ok {
		return bin
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "shmkit-extest-")
		if err != nil {
			t.Fatal(err)
		}
		dir = d // removed by Cleanup, from TestMain
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build %s: %v", pkg, err)
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	args := []string{"build", "-o", bin}
	if Race {
		args = append(args, "-race")
	}
	cmd := exec.Command(gobin, append(args, pkg)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	built[pkg] = bin
	return bin
}

// Cleanup removes the binaries built by Build. Call it from TestMain after
// m.Run.
func Cleanup() {
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}

// Proc is a started example process with its output collected.
type Proc struct {
	Cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{}
	err    error
}

// Start starts bin with args. The process is SIGKILLed at test cleanup if it
// is still running, and dies with the test binary (Pdeathsig).
func Start(t testing.TB, bin string, args ...string) *Proc {
	t.Helper()
	return StartCmd(t, exec.Command(bin, args...))
}

// StartCmd starts a prepared command (Env, Dir may be set).
func StartCmd(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	if Race {
		// A -race binary sleeps a second at exit (so that other threads can
		// finish reporting); that would make every run here take a second
		// longer per process generation. A race still fails the run: its
		// exit status becomes 66.
		if cmd.Env == nil {
			cmd.Env = os.Environ()
		}
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	}
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// Wait waits up to timeout for the process to exit and returns its exit
// code (-1 if a signal killed it). It fails the test on timeout.
func (p *Proc) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.Cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s %q still running after %v (killed)\nstdout:\n%s\nstderr:\n%s",
			filepath.Base(p.Cmd.Path), p.Cmd.Args[1:], timeout, p.Stdout(), p.Stderr())
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Pid returns the process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) { _ = p.Cmd.Process.Signal(sig) }

// Stdout and Stderr return what the process wrote so far.
func (p *Proc) Stdout() string { return p.stdout.String() }
func (p *Proc) Stderr() string { return p.stderr.String() }

// WaitOutput waits until the process's stdout or stderr contains substr
// and returns true, or returns false when the process exits or timeout
// passes first.
func (p *Proc) WaitOutput(substr string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if strings.Contains(p.Stdout(), substr) || strings.Contains(p.Stderr(), substr) {
			return true
		}
		select {
		case <-p.done:
			return strings.Contains(p.Stdout(), substr) || strings.Contains(p.Stderr(), substr)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return false
		}
	}
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
		if ppid, ok := parentOf(cpid); ok && ppid == pid {
			kids = append(kids, cpid)
		}
	}
	return kids
}

// Alive reports whether pid is a running (not zombie) process.
func Alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, ok := bytes.Cut(b, []byte(") "))
	return ok && len(rest) > 0 && rest[0] != 'Z' && rest[0] != 'X'
}

func parentOf(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// pid (comm) state ppid ...; comm may contain spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}

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

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
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
