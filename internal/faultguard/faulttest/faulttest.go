// Package faulttest is the truncation-test harness the structure packages
// share: a hostile peer (a child process) that truncates the object behind
// a segment, fresh specs of the shrinkable backends, and the check that an
// error is the fault guard's. Tests only.
package faulttest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/faultguard"
	"github.com/shmkit/shmkit/internal/racemode"
	"github.com/shmkit/shmkit/internal/shmerr"
	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/stretchr/testify/require"
)

// truncator is a hostile peer with write access: it truncates the object
// behind a segment (args[0], a path) to 0 bytes after args[1].
var truncator = testproc.Register("faulttest-truncator", func(a []string) error {
	d, err := time.ParseDuration(a[1])
	if err != nil {
		return err
	}
	time.Sleep(d)
	return os.Truncate(a[0], 0)
})

// Specs returns a fresh spec of each shrinkable backend ("posix", "file")
// with the path of the object behind it. remove removes a spec with
// everything its structure made; it runs at cleanup.
func Specs(t *testing.T, remove func(spec string) error) map[string][2]string {
	name := testproc.UniqueName("trunc")
	posix := "posix:/" + name
	file := "file:" + filepath.Join(t.TempDir(), name)
	t.Cleanup(func() {
		_ = remove(posix)
		_ = remove(file)
	})
	return map[string][2]string{
		"posix": {posix, "/dev/shm/" + name},
		"file":  {file, strings.TrimPrefix(file, "file:")},
	}
}

// Truncate truncates path from another process now and waits until it has.
func Truncate(t *testing.T, path string) {
	t.Helper()
	p := truncator.Start(t, path, "0s")
	require.NoError(t, p.Wait(time.Minute), p.Output())
}

// TruncateDuring truncates path from another process 20 ms from now, while
// the caller goes on operating on the segment; the caller waits for the
// returned process when done. Under -race it waits here instead: there an
// atomic on the mapping runs in the detector's C code, where a fault
// landing mid-operation cannot become a panic (internal/racemode), so the
// truncation finishes first. The plain run of the tests (.ci/run) lands it
// mid-operation.
func TruncateDuring(t *testing.T, path string) *testproc.Proc {
	t.Helper()
	p := truncator.Start(t, path, "20ms")
	if racemode.Enabled {
		require.NoError(t, p.Wait(time.Minute), p.Output())
	}
	return p
}

// RequireTruncated checks that err is the fault guard's: it wraps ErrCorrupt
// and ErrTruncated, says so, and names package pkg and spec.
func RequireTruncated(t *testing.T, err error, pkg, spec string) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, shmerr.ErrCorrupt)
	require.ErrorIs(t, err, faultguard.ErrTruncated)
	require.ErrorContains(t, err, "segment truncated by another process")
	require.True(t, strings.HasPrefix(err.Error(), pkg+": "), err.Error())
	require.ErrorContains(t, err, spec)
}
