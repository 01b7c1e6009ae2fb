package baseline

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/shmkit/shmkit/internal/testproc"
)

const (
	envRole = "SHMKIT_BASELINE_PEER"
	envArgs = "SHMKIT_BASELINE_ARGS"
	argSep  = "\x1f"
)

func peerArgs() []string {
	if a := os.Getenv(envArgs); a != "" {
		return strings.Split(a, argSep)
	}
	return nil
}

func init() {
	role := os.Getenv(envRole)
	if _, ok := builtinPeers[role]; !ok {
		return
	}
	exitPeer(role, runPeer(role, peerArgs()))
}

func exitPeer(role string, err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "baseline peer %s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

var (
	peersMu sync.Mutex
	peers   = map[string]func(args []string) error{}
)

// RegisterPeer registers fn as the peer side named name, for measurements
// of other mechanisms (a shmring or shmqueue benchmark in cmd/shmbench,
// say). The peer gets the args given to StartPeer and its files as fd 3,
// 4, ... (os.NewFile). Register at package level, so the child has it too.
func RegisterPeer(name string, fn func(args []string) error) {
	peersMu.Lock()
	defer peersMu.Unlock()
	peers[name] = fn
}

// RunPeer runs the registered peer this process was started as, if any,
// and exits; otherwise it returns at once. Call it first thing in main (or
// TestMain) of a binary that uses StartPeer. This package's own peers need
// no call: they run from its init.
func RunPeer() {
	role := os.Getenv(envRole)
	if role == "" {
		return
	}
	peersMu.Lock()
	fn := peers[role]
	peersMu.Unlock()
	if fn == nil {
		exitPeer(role, fmt.Errorf("no peer registered as %q", role))
	}
	exitPeer(role, fn(peerArgs()))
}

// Peer is a child process started by StartPeer.
type Peer struct{ p *peer }

// StartPeer re-executes the running binary as the peer registered under
// name, with files as its fd 3, 4, ... and args. The child dies with the
// parent (PDEATHSIG). Its stdout and stderr go to this process's stderr.
func StartPeer(name string, files []*os.File, args ...string) (*Peer, error) {
	p, err := startPeer(name, files, args...)
	if err != nil {
		return nil, err
	}
	return &Peer{p}, nil
}

// Wait waits up to timeout for the peer to exit and returns its failure,
// if any; a peer still running after timeout is killed.
func (p *Peer) Wait(timeout time.Duration) error { return p.p.wait(timeout) }

// Kill SIGKILLs the peer and reaps it.
func (p *Peer) Kill() { p.p.Kill() }

// Pid returns the peer's process ID.
func (p *Peer) Pid() int { return p.p.Pid() }

// peer is a started child process, run by testproc (the one child-process
// harness: start, PDEATHSIG, wait with timeout, kill).
type peer struct{ *testproc.Proc }

// startPeer re-executes this binary as the peer role with files as fd 3, 4, ...
func startPeer(role string, files []*os.File, args ...string) (*peer, error) {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envRole+"="+role, envArgs+"="+strings.Join(args, argSep))
	cmd.ExtraFiles = files
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	p, err := testproc.Launch(cmd)
	if err != nil {
		return nil, fmt.Errorf("baseline: start %s peer: %w", role, err)
	}
	return &peer{p}, nil
}

// wait waits for the peer to exit (killing it after timeout).
func (p *peer) wait(timeout time.Duration) error {
	err := p.Wait(timeout)
	switch {
	case errors.Is(err, testproc.ErrTimeout):
		return errors.New("baseline: peer timed out (killed)")
	case err != nil:
		return fmt.Errorf("baseline: peer failed: %w", err)
	}
	return nil
}

const peerTimeout = 5 * time.Minute
