package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shmkit/shmkit/examples/internal/extest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	extest.Cleanup()
	os.Exit(code)
}

// The example runs as a real program: three producer processes, one
// consumer on a WaitSet, every item of every ring in order, nothing left in
// /dev/shm.
func TestWaitSetExample(t *testing.T) {
	bin := extest.Build(t, "github.com/shmkit/shmkit/examples/waitset")
	p := extest.Start(t, bin, "-n", "300")
	if code := p.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, p.Stdout(), p.Stderr())
	}
	out := p.Stdout()
	for i := range 3 {
		if want := fmt.Sprintf("ring %d: 300 items in order", i); !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "drained 900 items from 3 producers") {
		t.Fatalf("no final line:\n%s", out)
	}
	if left := extest.ShmNames(fmt.Sprintf("shmkit-example-waitset-%d-", p.Pid())); len(left) != 0 {
		t.Fatalf("segments left behind: %v", left)
	}
	t.Log(out)
}
