package testproc

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Uids for tests that need other users: an attacker who plants objects and
// a victim (not root: root is trusted as an owner, the victim must not be).
const (
	AttackerUID = 12345
	VictimUID   = 23456
)

// NeedRoot skips t unless the test runs as root (euid 0), saying why it
// needs it. CI runs as root; a developer's plain run skips these tests.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root (euid 0) to %s; running as euid %d", why, os.Geteuid())
	}
}

// ExeForOthers returns a copy of the test binary that any uid can execute
// (go test builds it in a 0700 directory). The copy is removed at cleanup.
func ExeForOthers(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "shmkit-exe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	exe := filepath.Join(dir, filepath.Base(os.Args[0]))
	dst, err := os.OpenFile(exe, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(dst, src)
	if err := errors.Join(err, dst.Close()); err != nil {
		t.Fatal(err)
	}
	return exe
}

// AsUser returns the command that runs child c with args from exe (see
// ExeForOthers) as uid, group gid, in "/".
func (c Child) AsUser(t testing.TB, exe string, uid, gid uint32, args ...string) *exec.Cmd {
	t.Helper()
	cmd := c.Command(t, args...)
	cmd.Path, cmd.Args[0], cmd.Dir = exe, exe, "/"
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uid, Gid: gid}
	return cmd
}

// RunAsUser runs child c as uid (see AsUser), fails t unless it succeeds
// within a minute, and returns its output.
func (c Child) RunAsUser(t testing.TB, exe string, uid, gid uint32, args ...string) string {
	t.Helper()
	p := StartCmd(t, c.AsUser(t, exe, uid, gid, args...))
	if err := p.Wait(time.Minute); err != nil {
		t.Fatalf("child %s as uid %d: %v\n%s", c, uid, err, p.Output())
	}
	return p.Output()
}
