package sync_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/shmkit/shmkit/internal/testproc"
)

// TestNotifyInlines: Notify and Waiting inline, and the ring's publish
// inlines Notify (see Notify for the 45 ns a call that is not inlined cost
// a ring's round trip), as the compiler reports them for a normal build.
func TestNotifyInlines(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two packages with -gcflags=-m")
	}
	goTool, err := testproc.GoTool()
	if err != nil {
		t.Skipf("no go tool to ask the compiler with: %v", err)
	}
	cmd := exec.Command(goTool, "build", "-gcflags=-m", "-o", os.DevNull, ".", "../shmring")
	// The race detector's instrumentation makes both too large to inline;
	// the property is the normal build's, whatever GOFLAGS the tests run
	// with.
	cmd.Env = append(os.Environ(), "GOFLAGS="+withoutRace(os.Getenv("GOFLAGS")))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build -gcflags=-m: %v\n%s", err, out)
	}
	for _, want := range []string{
		"can inline (*Notifier).Notify\n",
		"can inline (*Notifier).Waiting\n",
		"inlining call to sync.(*Notifier).Notify\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the compiler no longer reports %q", strings.TrimSpace(want))
		}
	}
}

// withoutRace returns GOFLAGS without -race.
func withoutRace(flags string) string {
	var keep []string
	for _, f := range strings.Fields(flags) {
		if f != "-race" && f != "--race" && f != "-race=true" {
			keep = append(keep, f)
		}
	}
	return strings.Join(keep, " ")
}
