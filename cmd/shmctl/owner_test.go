package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/stretchr/testify/require"
)

// Root inspects every user's segments: another user's object is what it is
// (here a valid value segment), not "corrupt" because a program opening it
// would refuse it as untrusted. shmctl validates everything it reads.
func TestOtherUsersSegmentInspected(t *testing.T) {
	testproc.NeedRoot(t, "create a segment as another uid")
	exe := testproc.ExeForOthers(t)
	spec := posixSpec(t, "ctl-other-user")
	createChild.RunAsUser(t, exe, testproc.AttackerUID, testproc.AttackerUID, spec)

	res := runBin(t, "ls", "--json")
	r := findSpec(decodeList(t, res.stdout), spec)
	require.NotNil(t, r, res.stdout)
	require.NotEqual(t, "corrupt", r.Status, "%+v", r)
	require.Equal(t, "value", r.Header.Kind, "%+v", r)

	st := runBin(t, "stat", spec)
	require.NotContains(t, st.stdout+st.stderr, "untrusted", st.stdout+st.stderr)
	require.Contains(t, st.stdout, "Counters", st.stdout)
}

// runAs runs the built shmctl as uid (from a copy any uid can execute).
func runAs(t *testing.T, uid uint32, args ...string) result {
	t.Helper()
	dir, err := os.MkdirTemp("", "shmctl-others-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	exe := filepath.Join(dir, "shmctl")
	b, err := os.ReadFile(shmctlBin(t))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(exe, b, 0o755))
	cmd := exec.Command(exe, args...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{code, out.String(), errb.String()}
}

// ls run by a user who cannot read some segments says how many it left
// out, and stat says whose they are, their mode, and the access needed.
func TestLsAsOtherUserCountsUnreadable(t *testing.T) {
	testproc.NeedRoot(t, "run shmctl as another uid")
	a, b := posixSpec(t, "ctl-private"), posixSpec(t, "ctl-private")
	createValue(t, a)
	createValue(t, b) // root's, mode 0600
	uid := uint32(testproc.VictimUID)

	res := runAs(t, uid, "ls")
	require.Equal(t, 0, res.code, res.stderr)
	require.NotContains(t, res.stdout, a)
	m := regexp.MustCompile(`shmctl: ls: (\d+) objects not readable by uid 23456 left out; --all to list them\n`).FindStringSubmatch(res.stderr)
	require.NotNil(t, m, res.stderr)
	n, _ := strconv.Atoi(m[1])
	require.GreaterOrEqual(t, n, 2)

	res = runAs(t, uid, "ls", "--all")
	require.Equal(t, 0, res.code, res.stderr)
	require.Regexp(t, regexp.QuoteMeta(a)+`\s.*ERROR\n`, res.stdout)
	require.NotContains(t, res.stderr, "left out")

	st := runAs(t, uid, "stat", a)
	require.Equal(t, 1, st.code)
	require.Contains(t, st.stderr, fmt.Sprintf("shmctl: stat: %s: open /dev/shm/%s: owned by uid 0 (group 0), mode 0600: uid 23456 needs read access: permission denied",
		a, strings.TrimPrefix(a, "posix:/")))
}
