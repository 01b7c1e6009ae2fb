package livetest_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

// peer is a child process driven line by line: the test writes commands to
// its stdin and reads its replies from its stdout. Stderr goes to the
// testproc buffer (shown on failure).
type peer struct {
	t     testing.TB
	p     *testproc.Proc
	in    *os.File
	lines chan string
	name  string
}

// startPeer starts child c with args; mod may adjust the command (uids,
// namespaces) before it starts. The child is killed at cleanup.
func startPeer(t testing.TB, c testproc.Child, mod func(*exec.Cmd), args ...string) (*peer, error) {
	t.Helper()
	cmd := c.Command(t, args...)
	if mod != nil {
		mod(cmd)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin, cmd.Stdout = inR, outW
	p, err := testproc.Launch(cmd)
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, err
	}
	pr := &peer{t: t, p: p, in: inW, lines: make(chan string, 64), name: string(c)}
	go func() {
		defer close(pr.lines)
		defer outR.Close()
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			pr.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		pr.in.Close()
		select {
		case <-p.Done():
		default:
			p.Kill()
		}
	})
	return pr, nil
}

// mustStart is startPeer failing the test on error.
func mustStart(t testing.TB, c testproc.Child, mod func(*exec.Cmd), args ...string) *peer {
	t.Helper()
	p, err := startPeer(t, c, mod, args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// send writes one command line.
func (p *peer) send(cmd string) {
	p.t.Helper()
	if _, err := io.WriteString(p.in, cmd+"\n"); err != nil {
		p.t.Fatalf("%s: send %q: %v\n%s", p.name, cmd, err, p.p.Output())
	}
}

// next returns the next reply line, failing the test if none comes within
// timeout or the child exits.
func (p *peer) next(timeout time.Duration) string {
	p.t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			err := p.p.Wait(5 * time.Second)
			p.t.Fatalf("%s exited (%v) before replying\nstderr:\n%s", p.name, err, p.p.Output())
		}
		return l
	case <-time.After(timeout):
		p.t.Fatalf("%s: no reply within %v\nstderr:\n%s", p.name, timeout, p.p.Output())
	}
	return ""
}

// expect reads the next line and requires it to start with prefix; it
// returns the rest of the line.
func (p *peer) expect(prefix string, timeout time.Duration) string {
	p.t.Helper()
	l := p.next(timeout)
	rest, ok := strings.CutPrefix(l, prefix)
	if !ok {
		p.t.Fatalf("%s replied %q, want %q...\nstderr:\n%s", p.name, l, prefix, p.p.Output())
	}
	return strings.TrimSpace(rest)
}

// kill SIGKILLs the child and reaps it (so that its PID no longer exists).
func (p *peer) kill() { p.p.Kill() }

// commands reads command lines from stdin in a child; the channel closes
// at EOF (the test is done with the child).
func commands() <-chan string {
	ch := make(chan string)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// reply prints one reply line to the test.
func reply(format string, args ...any) { fmt.Printf(format+"\n", args...) }

// timeoutCtx is context.WithTimeout from Background.
func timeoutCtx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
