package testproc

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// GoTool returns the go command a test builds or asks the compiler with:
// the toolchain that built the test binary (GOROOT/bin/go) where it is
// there, else the first go on PATH (a binary built with -trimpath knows no
// GOROOT). It is the one place shmkit's tests look for it.
func GoTool() (string, error) {
	if root := runtime.GOROOT(); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return exec.LookPath("go")
}
