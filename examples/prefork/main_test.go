package main

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmkit/shmkit/examples/internal/extest"
	"github.com/shmkit/shmkit/internal/crashpoint"
)

func TestMain(m *testing.M) {
	code := m.Run()
	extest.Cleanup()
	os.Exit(code)
}

const pkg = "github.com/shmkit/shmkit/examples/prefork"

func wantSuccess(t *testing.T, p *extest.Proc, jobs int) {
	t.Helper()
	if code := p.Wait(t, time.Minute); code != 0 {
		t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, p.Stdout(), p.Stderr())
	}
	out := p.Stdout()
	if !strings.Contains(out, "prefork: "+strconv.Itoa(jobs)+" jobs done") ||
		!strings.Contains(out, "every job has exactly one correct result") {
		t.Fatalf("summary missing:\n%s", out)
	}
}

func TestPreforkRuns(t *testing.T) {
	bin := extest.Build(t, pkg)
	p := extest.Start(t, bin, "-workers", "3", "-jobs", "60", "-work", "1ms")
	wantSuccess(t, p, 60)
}

// SIGKILL a worker in the middle of a job: the job is re-queued, a
// replacement starts, and every job still gets its result.
func TestPreforkWorkerKilled(t *testing.T) {
	bin := extest.Build(t, pkg)
	// Jobs of 300ms: a worker spends microseconds between jobs, so one
	// that has printed "started" is all but certainly inside a job when the
	// signal lands. The assertions below read which job the parent saw it
	// die in, so a slow test that kills it in its next job still checks
	// the right thing.
	p := extest.Start(t, bin, "-workers", "2", "-jobs", "12", "-work", "300ms", "-v")
	started := regexp.MustCompile(`worker \d+ \[pid (\d+)\]: job \d+ started`)
	var m []string
	deadline := time.Now().Add(30 * time.Second)
	for m == nil && time.Now().Before(deadline) {
		m = started.FindStringSubmatch(p.Stdout())
		time.Sleep(time.Millisecond)
	}
	if m == nil {
		t.Fatalf("no job started:\n%s\n%s", p.Stdout(), p.Stderr())
	}
	pid, _ := strconv.Atoi(m[1])
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wantSuccess(t, p, 12)
	out := p.Stdout()
	died := regexp.MustCompile(`\[pid ` + m[1] + `\] signal: killed during job (\d+), job re-queued`).FindStringSubmatch(out)
	if died == nil {
		t.Fatalf("the killed worker %d was not seen dying mid-job with its job re-queued:\n%s", pid, out)
	}
	if !regexp.MustCompile(`: job ` + died[1] + ` started \(attempt 2\)`).MatchString(out) {
		t.Errorf("job %s never ran again:\n%s", died[1], out)
	}
}

// Workers killed right after taking a job from the queue, before recording
// it in their slot: the job is in no queue and no slot, and the parent's
// reconciliation must find it.
func TestPreforkLostInPop(t *testing.T) {
	bin := extest.Build(t, pkg)
	cmd := exec.Command(bin, "-workers", "2", "-jobs", "20", "-work", "1ms")
	cmd.Env = append(os.Environ(), crashpoint.Arm("prefork.popped", 3))
	p := extest.StartCmd(t, cmd)
	wantSuccess(t, p, 20)
	if !strings.Contains(p.Stdout(), "by reconciliation") || strings.Contains(p.Stdout(), "0 by reconciliation") {
		t.Errorf("no job recovered by reconciliation:\n%s", p.Stdout())
	}
}

// The parent kills busy workers itself (-chaos).
func TestPreforkChaos(t *testing.T) {
	bin := extest.Build(t, pkg)
	p := extest.Start(t, bin, "-workers", "3", "-jobs", "60", "-work", "5ms", "-chaos", "3")
	wantSuccess(t, p, 60)
	if n := strings.Count(p.Stdout(), "job re-queued"); n < 1 {
		t.Errorf("no job re-queued:\n%s", p.Stdout())
	}
}

// Ctrl-C: the parent stops its workers and exits 130 promptly.
func TestPreforkInterrupt(t *testing.T) {
	bin := extest.Build(t, pkg)
	p := extest.Start(t, bin, "-workers", "2", "-jobs", "100000", "-work", "10ms", "-v")
	if !p.WaitOutput("started", 30*time.Second) {
		t.Fatalf("no job started:\n%s", p.Stdout())
	}
	kids := extest.Children(p.Pid())
	p.Signal(syscall.SIGINT)
	start := time.Now()
	if code := p.Wait(t, 10*time.Second); code != 130 {
		t.Errorf("exit status %d, want 130\n%s\n%s", code, p.Stdout(), p.Stderr())
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v to stop", took)
	}
	for _, k := range kids {
		if extest.Alive(k) {
			t.Errorf("worker %d still alive", k)
		}
	}
}
