// Package shmtest helps tests (shmkit's own, and yours) check what happens
// when processes that share memory die at the worst moment.
//
// A crash test has three parts: real child processes, real SIGKILLs at
// chosen or random moments, and a record of what the processes did that
// survives the kills, against which the survivors' view is checked.
//
// # Children
//
// The test binary re-executes itself as the child: register the child's
// body at package level and route TestMain through Main.
//
//	func TestMain(m *testing.M) { shmtest.Main(m) }
//
//	var producer = shmtest.Register("producer", func(args []string) error {
//		r, err := shmring.Open[uint64](args[0])
//		...
//	})
//
//	func TestProducerCrash(t *testing.T) {
//		p := producer.Start(t, shmtest.Args(spec), shmtest.KillWithin(50*time.Millisecond))
//		<-p.Done()
//		...
//		p = p.Restart(t) // same child, same args, no kill planned
//	}
//
// Start fails the test if the child cannot start and SIGKILLs it at test
// cleanup if it is still running. Launch does the same without a
// testing.TB (for examples and harnesses); its caller must Kill or Wait.
//
// # Kills
//
// Proc.Kill sends SIGKILL now. KillWithin(d) sends it at a uniformly
// random moment in the first d after start; KillAfter(d) at exactly d.
// KillAt(point, nth) makes the child SIGKILL itself the nth time it reaches
// the named crash point, so a test can stop a peer exactly inside a
// window (between claim and publish, holding a lock, half-way through an
// insert) instead of hoping a random kill lands there. shmkit marks its
// windows with internal crash points (grep for crashpoint.Hit in its
// sources for the names, e.g. "layout.initializing"); your own code marks
// its windows with CrashPoint(name), which costs one branch on a global
// when no crash point is armed. Proc.Killed tells whether the child
// really died of SIGKILL, so a test can assert the point was reached.
//
// # Ledger
//
// A Ledger is an append-only file of fixed-size records ("producer 3 is
// pushing item 17", "pushed 17", "popped 17"), one write(2) each on an
// O_APPEND descriptor: a record is in the file as soon as the call returns,
// whatever happens to the process next, and records from many processes
// interleave without tearing. After the kills the test reads the ledger and
// runs checks on it: ExactlyOnce, AtMostLost(n), Delivered(lost, dup),
// InOrderPerProducer, or its own Check functions.
//
// The ledger is not the system under test: it says what the processes
// believed they did. Record "pushing" before a push and "pushed" after it
// returns: an item with only "pushing" was in flight when its producer
// died, and the checks allow it to be delivered once or not at all. Record
// "popped" after a pop returns: a consumer killed between the two loses
// that record, which AtMostLost(n) allows for.
package shmtest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/internal/testproc"
)

// Main runs the registered child named by the environment, or the tests.
// Call it from TestMain; without it children cannot start.
func Main(m *testing.M) { testproc.Main(m) }

// IsChild reports whether this process is running as a child started by
// this package.
func IsChild() bool { return testproc.IsChild() }

// CrashPointEnv is the environment variable that arms a crash point.
const CrashPointEnv = crashpoint.Env

// CrashPoint marks a dangerous window in code that runs inside a child. If
// the child was started with KillAt(name, n), it SIGKILLs itself the nth
// time it gets here; otherwise CrashPoint returns at once.
func CrashPoint(name string) {
	if crashpoint.Enabled {
		crashpoint.Hit(name)
	}
}

// Child is a registered child process body.
type Child struct{ c testproc.Child }

// Register records fn as the body of the child named name and returns a
// handle to start it. Call it at package level (or in init) so that the
// re-executed binary registers the same children before Main runs.
// Registering a name twice panics. fn returning an error makes the child
// print it and exit with status 1.
func Register(name string, fn func(args []string) error) Child {
	return Child{testproc.Register(name, fn)}
}

// Name returns the name the child was registered under.
func (c Child) Name() string { return string(c.c) }

// Option configures a child start.
type Option func(*startConfig)

type startConfig struct {
	args       []string
	env        []string
	files      []*os.File
	crashPoint string
	killAfter  time.Duration // > 0: SIGKILL this long after start
	killWithin time.Duration // > 0: SIGKILL at a random moment before this
}

// Args sets the arguments passed to the child's function.
func Args(args ...string) Option {
	return func(c *startConfig) { c.args = append([]string(nil), args...) }
}

// Env adds "KEY=value" entries to the child's environment.
func Env(kv ...string) Option {
	return func(c *startConfig) { c.env = append(c.env, kv...) }
}

// ExtraFiles passes open files to the child as descriptors 3, 4, ... (for
// example a memfd segment's File, which the child opens as "fd:3").
func ExtraFiles(files ...*os.File) Option {
	return func(c *startConfig) { c.files = append(c.files, files...) }
}

// KillAt makes the child SIGKILL itself the nth time (n >= 1) it reaches
// the crash point named point.
func KillAt(point string, nth int) Option {
	return func(c *startConfig) { c.crashPoint = crashpoint.Arm(point, max(nth, 1)) }
}

// KillAfter SIGKILLs the child d after it starts, if it is still running.
func KillAfter(d time.Duration) Option {
	return func(c *startConfig) { c.killAfter, c.killWithin = d, 0 }
}

// KillWithin SIGKILLs the child at a uniformly random moment in [0, d)
// after it starts, if it is still running. The clock starts at exec: a Go
// test binary takes milliseconds (more under -race) to reach the child
// function, so a short d often kills the child before it did anything. Log Proc.KilledAfter to
// reproduce an interesting timing with KillAfter.
func KillWithin(d time.Duration) Option {
	return func(c *startConfig) { c.killWithin, c.killAfter = d, 0 }
}

// Proc is a running (or finished) child.
//
// Its methods may be called from any goroutine.
type Proc struct {
	tp       *testproc.Proc
	child    Child
	args     []string
	env      []string
	files    []*os.File
	killWait time.Duration // the planned kill delay, 0 if none
	timer    *time.Timer
}

// Start starts the child. It fails the test if the child cannot start, and
// SIGKILLs the child at test cleanup if it is still running.
func (c Child) Start(t testing.TB, opts ...Option) *Proc {
	t.Helper()
	p, err := c.Launch(opts...)
	if err != nil {
		t.Fatalf("shmtest: %v", err)
	}
	t.Cleanup(func() {
		select {
		case <-p.Done():
		default:
			p.Kill()
		}
	})
	return p
}

// Launch is Start without a testing.TB: nothing kills the child for you,
// so the caller must Kill or Wait it.
func (c Child) Launch(opts ...Option) (*Proc, error) {
	var cfg startConfig
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	cmd := c.c.Cmd(cfg.args...)
	cmd.Env = append(cmd.Env, cfg.env...)
	if cfg.crashPoint != "" {
		cmd.Env = append(cmd.Env, cfg.crashPoint)
	}
	cmd.ExtraFiles = cfg.files
	tp, err := testproc.Launch(cmd)
	if err != nil {
		return nil, err
	}
	p := &Proc{tp: tp, child: c, args: cfg.args, env: cfg.env, files: cfg.files}
	switch {
	case cfg.killAfter > 0:
		p.killWait = cfg.killAfter
	case cfg.killWithin > 0:
		p.killWait = time.Duration(rand.Int64N(int64(cfg.killWithin)))
	}
	if p.killWait > 0 {
		p.timer = time.AfterFunc(p.killWait, func() {
			select {
			case <-p.Done():
			default:
				_ = p.tp.Cmd.Process.Signal(syscall.SIGKILL)
			}
		})
	}
	return p, nil
}

// Run starts the child and waits for it to exit successfully, failing the
// test otherwise. It returns what the child wrote to stdout and stderr.
func (c Child) Run(t testing.TB, timeout time.Duration, opts ...Option) string {
	t.Helper()
	p := c.Start(t, opts...)
	if err := p.Wait(timeout); err != nil {
		t.Fatalf("shmtest: child %s: %v\n%s", c.Name(), err, p.Output())
	}
	return p.Output()
}

// Restart waits for p to end (killing it if it is still running) and
// starts the same child again with the same arguments, environment and
// extra files, plus opts. A planned kill or crash point is not carried
// over: pass it again to kill the new process too.
func (p *Proc) Restart(t testing.TB, opts ...Option) *Proc {
	t.Helper()
	select {
	case <-p.Done():
	default:
		p.Kill()
	}
	base := []Option{Args(p.args...), Env(p.env...), ExtraFiles(p.files...)}
	return p.child.Start(t, append(base, opts...)...)
}

// Kill sends SIGKILL and waits until the child has been reaped.
func (p *Proc) Kill() {
	if p.timer != nil {
		p.timer.Stop()
	}
	p.tp.Kill()
}

// Wait waits up to timeout for the child to exit and returns its exit
// error (nil for status 0; an *exec.ExitError for a kill or a failure). A
// child still running after timeout is killed and an error returned.
func (p *Proc) Wait(timeout time.Duration) error { return p.tp.Wait(timeout) }

// Done is closed when the child has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.tp.Done() }

// Output returns what the child has written to stdout and stderr so far.
func (p *Proc) Output() string { return p.tp.Output() }

// Pid returns the child's process ID.
func (p *Proc) Pid() int { return p.tp.Pid() }

// KilledAfter returns the delay of the kill planned by KillAfter or
// KillWithin, or 0 if none was planned.
func (p *Proc) KilledAfter() time.Duration { return p.killWait }

// Killed reports whether the child has exited because of SIGKILL (from
// Kill, a planned kill, a crash point or anyone else). It returns false
// while the child runs.
func (p *Proc) Killed() bool {
	select {
	case <-p.Done():
	default:
		return false
	}
	ws, ok := p.tp.Cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// ExitedOK reports whether the child has exited with status 0.
func (p *Proc) ExitedOK() bool {
	select {
	case <-p.Done():
	default:
		return false
	}
	return p.tp.Cmd.ProcessState.Success()
}

// String names the child and its pid, for test messages.
func (p *Proc) String() string {
	return fmt.Sprintf("%s[%d]", p.child.Name(), p.Pid())
}
