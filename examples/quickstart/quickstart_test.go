package quickstart

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmkit/shmkit/examples/internal/extest"
	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/segment"
)

func TestMain(m *testing.M) {
	code := m.Run()
	extest.Cleanup()
	os.Exit(code)
}

// buildQuickStart extracts the quick start program from README.md, points it
// at spec instead of posix:/ticks, and builds it against this checkout.
func buildQuickStart(t *testing.T, spec string) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const open = "```go\n// ticks:"
	i := strings.Index(string(readme), open)
	if i < 0 {
		t.Fatal("README.md has no quick start program (a ```go block starting with // ticks:)")
	}
	src := string(readme[i+len("```go\n"):])
	src = src[:strings.Index(src, "```")]
	if !strings.Contains(src, `"posix:/ticks"`) {
		t.Fatal(`the quick start no longer uses "posix:/ticks"; update this test`)
	}
	src = strings.Replace(src, `"posix:/ticks"`, `"`+spec+`"`, 1)

	dir := t.TempDir()
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	mod := "module ticks\n\ngo 1.26.0\n\nrequire github.com/shmkit/shmkit v0.0.0\n\nreplace github.com/shmkit/shmkit => " + root + "\n"
	for name, b := range map[string][]byte{"main.go": []byte(src), "go.mod": []byte(mod), "go.sum": sum} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return extest.BuildDir(t, dir, "ticks")
}

func TestQuickStartTwoProducersTwoConsumers(t *testing.T) {
	spec := "posix:/" + testproc.UniqueName("quickstart")
	t.Cleanup(func() { _ = segment.Remove(spec) })
	bin := buildQuickStart(t, spec)
	name := "/dev/shm/" + strings.TrimPrefix(spec, "posix:/")

	// A consumer before any producer: a clear error, not a hang.
	early := extest.Start(t, bin, "consume")
	if code := early.Wait(t, time.Minute); code == 0 || !strings.Contains(early.Stderr(), "no such file") {
		t.Fatalf("consumer without producer: exit %d, stderr %q", code, early.Stderr())
	}

	p1 := extest.Start(t, bin, "produce")
	// As a user would: start the consumer once the producer has made the
	// segment (Open waits for a creator still initializing it).
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(name); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the producer never created %s:\n%s", name, p1.Stderr())
		}
	}
	c1 := extest.Start(t, bin, "consume")
	if !c1.WaitOutput("tick 3 ACME", time.Minute) {
		t.Fatalf("the consumer saw no ticks:\n%s\n%s", c1.Stdout(), c1.Stderr())
	}

	// A second producer and a second consumer fail at once, naming the
	// live holder, and leave the segment to the first pair.
	for _, role := range []string{"produce", "consume"} {
		p := extest.Start(t, bin, role)
		code := p.Wait(t, time.Minute)
		if code == 0 || !strings.Contains(p.Stderr(), "role held by another process") || !strings.Contains(p.Stderr(), "alive") {
			t.Fatalf("second %s: exit %d, stderr %q", role, code, p.Stderr())
		}
		if _, err := os.Stat(name); err != nil {
			t.Fatalf("a failed second %s removed the live segment: %v", role, err)
		}
	}
	before := strings.Count(c1.Stdout(), "\n")
	if !c1.WaitOutput("tick "+strconv.Itoa(before+20)+" ACME", time.Minute) {
		t.Fatalf("the first pair stopped after the second ones failed:\n%s", c1.Stderr())
	}

	// Ctrl-C of the producer: it closes writes and removes the name; the
	// consumer reads what is left and exits cleanly.
	p1.Signal(syscall.SIGINT)
	if code := p1.Wait(t, time.Minute); code != 0 {
		t.Fatalf("producer after Ctrl-C: exit %d\n%s", code, p1.Stderr())
	}
	if code := c1.Wait(t, time.Minute); code != 0 || !strings.Contains(c1.Stdout(), "the producer has finished") {
		t.Fatalf("consumer after the producer finished: exit %d\nstdout tail %q\nstderr %q", code, tail(c1.Stdout()), c1.Stderr())
	}
	if _, err := os.Stat(name); !os.IsNotExist(err) {
		t.Fatalf("the producer left %s behind: %v", name, err)
	}
}

func tail(s string) string {
	if len(s) > 300 {
		return s[len(s)-300:]
	}
	return s
}
