package shmerr_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/shmkit/shmkit/internal/testproc"
)

// Building shmkit for another OS fails, and every failing package's first
// error line says why, instead of "undefined: unix.SYS_FUTEX".
func TestOtherOSBuildSaysLinuxOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the module for other GOOSes")
	}
	goTool, err := testproc.GoTool()
	if err != nil {
		t.Fatalf("no go tool to cross-compile with: %v", err)
	}
	for _, goos := range []string{"darwin", "windows"} {
		cmd := exec.Command(goTool, "build", "github.com/shmkit/shmkit/...")
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH=amd64", "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("GOOS=%s: the build succeeded", goos)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) < 2 || !strings.HasPrefix(lines[0], "# ") {
			t.Fatalf("GOOS=%s: unexpected output:\n%s", goos, out)
		}
		for i, l := range lines {
			if strings.HasPrefix(l, "# ") && i+1 < len(lines) && !strings.HasSuffix(lines[i+1], "undefined: shmkit_supports_linux_only") {
				t.Errorf("GOOS=%s: %s: first error is %q, want undefined: shmkit_supports_linux_only", goos, l, lines[i+1])
			}
		}
	}
}
