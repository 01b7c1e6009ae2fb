// Package testproc runs parts of a test binary as real child processes.
//
// Cross-process behaviour in shmkit is tested with real processes: the test
// binary re-executes itself with an environment variable naming a registered
// child function, which runs instead of the tests. A package opts in with
//
//	func TestMain(m *testing.M) { testproc.Main(m) }
//
// and registers children in init or at package level:
//
//	var child = testproc.Register("ring-consumer", func(args []string) error { ... })
//
// Tests start them with testproc.Start / Run and may SIGKILL them at will.
//
// StartCmd and Launch also run any other prepared exec.Cmd (a built example
// binary, say) the same way: output captured, killed at test cleanup, dying
// with the test binary, waited for with a timeout. This is the one child
// process harness of shmkit's tests, shmtest, shmbench and the examples.
package testproc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	envChild  = "SHMKIT_TEST_CHILD"
	quietRace = "GORACE=atexit_sleep_ms=0"
)

// ChildFunc is the body of a child process. Returning a non-nil error makes
// the child print it to stderr and exit with status 1.
type ChildFunc func(args []string) error

var (
	mu       sync.Mutex
	children = map[string]ChildFunc{}
)

// Child names a registered child function.
type Child string

// Register records fn under name and returns a handle for starting it.
// Registering the same name twice panics (a programming error in tests).
func Register(name string, fn ChildFunc) Child {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := children[name]; dup {
		panic("testproc: child registered twice: " + name)
	}
	children[name] = fn
	return Child(name)
}

// IsChild reports whether this process is running as a child.
func IsChild() bool { return os.Getenv(envChild) != "" }

// Main runs the registered child named by the environment, or the tests.
func Main(m *testing.M) {
	if name := os.Getenv(envChild); name != "" {
		mu.Lock()
		fn := children[name]
		mu.Unlock()
		if fn == nil {
			fmt.Fprintf(os.Stderr, "testproc: no child named %q\n", name)
			os.Exit(2)
		}
		var args []string
		if a := os.Getenv(envChild + "_ARGS"); a != "" {
			args = strings.Split(a, "\x1f")
		}
		if err := fn(args); err != nil {
			fmt.Fprintf(os.Stderr, "child %s: %v\n", name, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Proc is a running child.
type Proc struct {
	Cmd  *exec.Cmd
	name string
	out  *outputs
	done chan struct{}
	err  error
}

// ErrTimeout is wrapped by Wait's error for a child it had to kill.
var ErrTimeout = errors.New("testproc: child still running at timeout")

// Command prepares (does not start) child c with args. The caller may set
// ExtraFiles, Env additions or Stdin on the returned Cmd before Start.
func (c Child) Command(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	return c.Cmd(args...)
}

// Cmd is Command for callers that have no testing.TB (runnable examples,
// harnesses such as shmtest).
func (c Child) Cmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		// A -race binary sleeps 1s at exit by default; children exit often.
		quietRace+" "+os.Getenv("GORACE"),
		envChild+"="+string(c),
		envChild+"_ARGS="+strings.Join(args, "\x1f"))
	// A child must not outlive a test binary that was killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Start starts child c with args; the child is killed at test cleanup if it
// is still running.
func (c Child) Start(t testing.TB, args ...string) *Proc {
	t.Helper()
	return StartCmd(t, c.Command(t, args...))
}

// StartCmd starts a command prepared by Child.Command, or any other
// exec.Cmd (see Launch); the child is killed at test cleanup if it is still
// running.
func StartCmd(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	p, err := Launch(cmd)
	if err != nil {
		t.Fatalf("%v", err)
	}
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

// Launch starts a command prepared by Child.Cmd or Child.Command, or any
// other exec.Cmd, without a testing.TB: nothing kills the child at test
// cleanup, so the caller must Kill or Wait it. Stdout and stderr the caller
// left nil are captured (Output, Stdout, Stderr). A command without
// SysProcAttr gets Pdeathsig SIGKILL: it must not outlive a test binary that
// was killed. A -race child is told not to sleep at exit (GORACE
// atexit_sleep_ms=0; a race still fails it, with status 66).
func Launch(cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{Cmd: cmd, name: envName(cmd), out: &outputs{}, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = stream{p.out, &p.out.stdout}
	}
	if cmd.Stderr == nil {
		cmd.Stderr = stream{p.out, &p.out.stderr}
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	if !slices.ContainsFunc(cmd.Env, func(e string) bool { return strings.HasPrefix(e, quietRace) }) {
		cmd.Env = append(cmd.Env, quietRace+" "+os.Getenv("GORACE"))
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testproc: start %s: %w", p.name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Run starts child c and waits for it, failing the test if it fails.
func (c Child) Run(t testing.TB, args ...string) string {
	t.Helper()
	p := c.Start(t, args...)
	if err := p.Wait(2 * time.Minute); err != nil {
		t.Fatalf("child %s %q: %v\n%s", c, args, err, p.Output())
	}
	return p.Output()
}

// Pid returns the child's process ID.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Wait waits up to timeout for the child to exit and returns its exit error.
// A child still running after timeout is killed and an error returned.
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		_ = p.Cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%w: %s still running after %v (killed)", ErrTimeout, p.name, timeout)
	}
}

// Done is closed when the child has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Kill sends SIGKILL and waits for the child to be reaped.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Signal sends sig to the child.
func (p *Proc) Signal(sig syscall.Signal) { _ = p.Cmd.Process.Signal(sig) }

// Output returns what the child wrote to stdout and stderr so far,
// interleaved as written.
func (p *Proc) Output() string { return p.out.read(&p.out.all) }

// Stdout returns what the child wrote to its stdout so far (if captured).
func (p *Proc) Stdout() string { return p.out.read(&p.out.stdout) }

// Stderr returns what the child wrote to its stderr so far (if captured).
func (p *Proc) Stderr() string { return p.out.read(&p.out.stderr) }

// WaitOutput waits until the child's output contains substr and returns
// true, or returns false when the child exits or timeout passes first.
func (p *Proc) WaitOutput(substr string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if strings.Contains(p.Output(), substr) {
			return true
		}
		select {
		case <-p.done:
			return strings.Contains(p.Output(), substr)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

func envName(cmd *exec.Cmd) string {
	for _, e := range cmd.Env {
		if v, ok := strings.CutPrefix(e, envChild+"="); ok {
			return v
		}
	}
	return cmd.Path
}

// outputs collects a child's stdout and stderr, each alone and interleaved.
type outputs struct {
	mu                  sync.Mutex
	all, stdout, stderr bytes.Buffer
}

func (o *outputs) read(b *bytes.Buffer) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return b.String()
}

// stream is one of a child's output streams.
type stream struct {
	o *outputs
	b *bytes.Buffer
}

func (s stream) Write(p []byte) (int, error) {
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	s.o.all.Write(p)
	return s.b.Write(p)
}

var nameSeq atomic.Uint64

// UniqueName returns a name unique to this process and call, safe to use for
// POSIX shm objects from parallel tests and fuzz workers:
// "shmkit-test-<prefix>-<pid>-<n>".
func UniqueName(prefix string) string {
	return fmt.Sprintf("shmkit-test-%s-%d-%d", prefix, os.Getpid(), nameSeq.Add(1))
}
