package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmkit/shmkit/examples/internal/extest"
	"github.com/shmkit/shmkit/segment"
)

func TestMain(m *testing.M) {
	code := m.Run()
	extest.Cleanup()
	os.Exit(code)
}

const pkg = "github.com/shmkit/shmkit/examples/kvcache"

func TestKVCache(t *testing.T) {
	bin := extest.Build(t, pkg)
	p := extest.Start(t, bin, "-workers", "3", "-lookups", "5000", "-keys", "2000", "-rounds", "100")
	if code := p.Wait(t, time.Minute); code != 0 {
		t.Fatalf("exit status %d\n%s\n%s", code, p.Stdout(), p.Stderr())
	}
	if !strings.Contains(p.Stdout(), "kvcache: verified") {
		t.Errorf("not verified:\n%s", p.Stdout())
	}
	if left := extest.ShmNames(fmt.Sprintf("shmkit-kvcache-%d", p.Pid())); len(left) > 0 {
		t.Errorf("segments left: %v", left)
	}
}

// A kept cache is reused by the next run, which starts warm.
func TestKVCacheWarm(t *testing.T) {
	bin := extest.Build(t, pkg)
	name := fmt.Sprintf("shmkit-extest-kv-%d", os.Getpid())
	spec := "posix:/" + name
	t.Cleanup(func() { _ = segment.Remove(spec) })
	args := []string{"-segment", spec, "-workers", "2", "-lookups", "3000", "-keys", "1000", "-rounds", "100"}
	first := extest.Start(t, bin, append(args, "-keep")...)
	if code := first.Wait(t, time.Minute); code != 0 {
		t.Fatalf("first run: exit status %d\n%s\n%s", code, first.Stdout(), first.Stderr())
	}
	if len(extest.ShmNames(name)) != 1 {
		t.Fatalf("-keep did not keep %s", spec)
	}
	second := extest.Start(t, bin, args...)
	if code := second.Wait(t, time.Minute); code != 0 {
		t.Fatalf("second run: exit status %d\n%s\n%s", code, second.Stdout(), second.Stderr())
	}
	if strings.Contains(second.Stdout(), ": 0 of ") {
		t.Errorf("second run started cold:\n%s", second.Stdout())
	}
	if left := extest.ShmNames(name); len(left) > 0 {
		t.Errorf("segment %s left after a run without -keep", spec)
	}
}

func TestKVCacheInterrupt(t *testing.T) {
	bin := extest.Build(t, pkg)
	p := extest.Start(t, bin, "-workers", "2", "-lookups", "1000000000", "-rounds", "100")
	if !p.WaitOutput("lookups, hit rate", 30*time.Second) {
		t.Fatalf("no progress:\n%s\n%s", p.Stdout(), p.Stderr())
	}
	kids := extest.Children(p.Pid())
	p.Signal(syscall.SIGINT)
	if code := p.Wait(t, 10*time.Second); code != 130 {
		t.Errorf("exit status %d, want 130\n%s\n%s", code, p.Stdout(), p.Stderr())
	}
	for _, k := range kids {
		if extest.Alive(k) {
			t.Errorf("worker %d still alive", k)
		}
	}
	if left := extest.ShmNames(fmt.Sprintf("shmkit-kvcache-%d", p.Pid())); len(left) > 0 {
		t.Errorf("segments left: %v", left)
	}
}
