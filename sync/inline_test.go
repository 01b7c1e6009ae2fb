package sync_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestNotifyInlines: Notify and Waiting inline into their callers (see
// Notify for the 45 ns a call that is not inlined costs a ring's round
// trip), as the compiler reports them.
func TestNotifyInlines(t *testing.T) {
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goTool, "build", "-gcflags=-m", "-o", "/dev/null", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build -gcflags=-m: %v\n%s", err, out)
	}
	for _, fn := range []string{"(*Notifier).Notify", "(*Notifier).Waiting"} {
		if !strings.Contains(string(out), "can inline "+fn+"\n") {
			t.Errorf("the compiler no longer inlines %s", fn)
		}
	}
}
