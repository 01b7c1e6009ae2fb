package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmkit/shmkit/examples/internal/extest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	extest.Cleanup()
	os.Exit(code)
}

const pkg = "github.com/shmkit/shmkit/examples/pipeline"

// segPrefix is the /dev/shm prefix of a posix pipeline started as pid.
func segPrefix(pid int) string { return fmt.Sprintf("shmkit-pipeline-%d-", pid) }

func TestPipelineRuns(t *testing.T) {
	bin := extest.Build(t, pkg)
	cases := [][]string{
		{"-n", "20000"},
		{"-n", "20000", "-backend", "memfd", "-elem", "16", "-stages", "3"},
		{"-n", "20000", "-backend", "file", "-elem", "256", "-stages", "0"},
		{"-n", "5000", "-backend", "sysv", "-elem", "1024", "-stages", "1", "-cap", "64"},
		{"-n", "3000", "-rate", "20000", "-batch", "1"},
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			sysvBefore := extest.SysVShmKeys(sysvKeyLo, sysvKeyHi)
			tmp := t.TempDir()
			cmd := exec.Command(bin, args...)
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
			p := extest.StartCmd(t, cmd)
			code := p.Wait(t, time.Minute)
			out := p.Stdout()
			if code != 0 {
				t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, out, p.Stderr())
			}
			for _, want := range []string{"verified", "latency", "throughput"} {
				if !strings.Contains(out, want) {
					t.Errorf("summary lacks %q:\n%s", want, out)
				}
			}
			if !strings.Contains(out, "created, ") || strings.Count(out, "created") != 1 {
				t.Errorf("no segment line:\n%s", out)
			}
			if left := extest.ShmNames(segPrefix(p.Pid())); len(left) > 0 {
				t.Errorf("segments left in /dev/shm: %v", left)
			}
			for k := range extest.SysVShmKeys(sysvKeyLo, sysvKeyHi) {
				if !sysvBefore[k] {
					t.Errorf("SysV segment %#x left behind", k)
				}
			}
			if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
				t.Errorf("left in the temp directory: %v", ents)
			}
		})
	}
}

// A corrupted item must fail the run: the first transform damages one
// checksum, the second notices, and the exit status is 1.
func TestPipelineDetectsCorruption(t *testing.T) {
	bin := extest.Build(t, pkg)
	cmd := exec.Command(bin, "-n", "10000")
	cmd.Env = append(os.Environ(), envCorrupt+"=4321")
	p := extest.StartCmd(t, cmd)
	if code := p.Wait(t, time.Minute); code != 1 {
		t.Fatalf("exit status %d, want 1\nstdout:\n%s\nstderr:\n%s", code, p.Stdout(), p.Stderr())
	}
	if !strings.Contains(p.Stdout(), "FAILED") || !strings.Contains(p.Stderr(), "bad checksum") {
		t.Errorf("failure not reported:\nstdout:\n%s\nstderr:\n%s", p.Stdout(), p.Stderr())
	}
	if left := extest.ShmNames(segPrefix(p.Pid())); len(left) > 0 {
		t.Errorf("segments left in /dev/shm: %v", left)
	}
}

// Ctrl-C in the middle of a run: the parent stops its stages, removes every
// segment, and exits promptly with status 130 (143 for SIGTERM), whatever
// the backend.
func TestPipelineInterrupt(t *testing.T) {
	for _, c := range []struct {
		backend string
		sig     syscall.Signal
	}{
		{"posix", syscall.SIGINT},
		{"posix", syscall.SIGTERM},
		{"sysv", syscall.SIGINT},
		{"file", syscall.SIGINT},
		{"memfd", syscall.SIGINT},
	} {
		t.Run(c.backend+"-"+c.sig.String(), func(t *testing.T) {
			bin := extest.Build(t, pkg)
			sysvBefore := extest.SysVShmKeys(sysvKeyLo, sysvKeyHi)
			tmp := t.TempDir() // the file backend's directory goes here
			// Far more items than can flow in the test's lifetime, paced so
			// that the run is certainly in the middle when interrupted.
			cmd := exec.Command(bin, "-n", "4000000000", "-rate", "1000000", "-backend", c.backend)
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
			p := extest.StartCmd(t, cmd)
			kids := waitRunning(t, p)
			p.Signal(c.sig)
			start := time.Now()
			code := p.Wait(t, 10*time.Second)
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("took %v to stop after %v", took, c.sig)
			}
			if want := 128 + int(c.sig); code != want {
				t.Errorf("exit status %d, want %d\nstderr:\n%s", code, want, p.Stderr())
			}
			if !strings.Contains(p.Stderr(), "interrupted after") {
				t.Errorf("no interruption report:\n%s", p.Stderr())
			}
			for _, k := range kids {
				if extest.Alive(k) {
					t.Errorf("stage process %d still alive", k)
				}
			}
			if left := extest.ShmNames(segPrefix(p.Pid())); len(left) > 0 {
				t.Errorf("segments left in /dev/shm: %v", left)
			}
			for k := range extest.SysVShmKeys(sysvKeyLo, sysvKeyHi) {
				if !sysvBefore[k] {
					t.Errorf("SysV segment %#x left behind", k)
				}
			}
			if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
				t.Errorf("left in the temp directory: %v", ents)
			}
		})
	}
}

// The range of the random SysV keys the pipeline picks.
const sysvKeyLo, sysvKeyHi = 0x5e000000, 0x5effffff

// SIGKILL of the parent: it can clean up nothing, yet the stages die
// (Pdeathsig) and no segment stays behind (the names were removed once every
// stage had attached).
func TestPipelineParentKilled(t *testing.T) {
	bin := extest.Build(t, pkg)
	p := extest.Start(t, bin, "-n", "4000000000", "-rate", "1000000")
	kids := waitRunning(t, p)
	p.Signal(syscall.SIGKILL)
	p.Wait(t, 10*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for _, k := range kids {
		for extest.Alive(k) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if extest.Alive(k) {
			t.Errorf("stage process %d outlived its SIGKILLed parent", k)
		}
	}
	if left := extest.ShmNames(segPrefix(p.Pid())); len(left) > 0 {
		t.Errorf("segments left in /dev/shm: %v", left)
	}
}

// waitRunning waits until all four stages of a default pipeline run, and
// returns their pids. The parent removes the segment names exactly when
// every stage has attached; if the names came and went between two looks,
// the first progress line (after a second) says the same.
func waitRunning(t *testing.T, p *extest.Proc) []int {
	t.Helper()
	prefix := segPrefix(p.Pid())
	deadline := time.Now().Add(30 * time.Second)
	seen := false
	for time.Now().Before(deadline) {
		select {
		case <-p.Done():
			t.Fatalf("pipeline exited early\nstdout:\n%s\nstderr:\n%s", p.Stdout(), p.Stderr())
		default:
		}
		n := len(extest.ShmNames(prefix))
		seen = seen || n > 0
		if (seen && n == 0) || strings.Contains(p.Stderr(), "> sink ") {
			kids := extest.Children(p.Pid())
			if len(kids) != 4 {
				t.Fatalf("%d stage processes, want 4", len(kids))
			}
			return kids
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("pipeline never got running\nstderr:\n%s", p.Stderr())
	return nil
}

func TestHistogram(t *testing.T) {
	for _, v := range []uint64{0, 1, 31, 32, 33, 63, 64, 65, 1000, 123456789, 1<<63 + 5, ^uint64(0)} {
		b := histBucket(v)
		if b < 0 || b >= histBuckets {
			t.Fatalf("bucket(%d) = %d out of range", v, b)
		}
		if up := histUpper(b); up < v {
			t.Errorf("upper(bucket(%d)) = %d < value", v, up)
		}
		if b > 0 && histUpper(b-1) >= v {
			t.Errorf("value %d also fits bucket %d (upper %d)", v, b-1, histUpper(b-1))
		}
		if v >= 32 {
			if err := float64(histUpper(b)-v) / float64(v); err > 1.0/32 {
				t.Errorf("bucket of %d is %.1f%% wide", v, err*100)
			}
		}
	}
	var h [histBuckets]uint64
	for v := uint64(1); v <= 1000; v++ {
		h[histBucket(v)]++
	}
	for _, c := range []struct {
		q    float64
		want uint64
	}{{0.5, 500}, {0.99, 990}, {1, 1000}} {
		got := histQuantile(h[:], c.q)
		if got < c.want || float64(got-c.want) > float64(c.want)/32 {
			t.Errorf("quantile %v = %d, want %d (within 3%%)", c.q, got, c.want)
		}
	}
}
