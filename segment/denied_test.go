package segment_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/segment"
	"github.com/stretchr/testify/require"
)

// deniedChild opens args[0] (read-only when args[1] is "ro") and prints
// "ok", or "perm=BOOL" and the error.
var deniedChild = testproc.Register("segment-denied", func(args []string) error {
	var opts []segment.Option
	if args[1] == "ro" {
		opts = append(opts, segment.ReadOnly())
	}
	s, err := segment.Open(args[0], opts...)
	if err != nil {
		fmt.Printf("perm=%v\nerr=%v\n", errors.Is(err, fs.ErrPermission), err)
		return nil
	}
	fmt.Println("ok")
	return s.Close()
})

// A segment another user may not open says who owns it, its mode and the
// access that was needed, instead of a bare "permission denied".
func TestPermissionDeniedSaysOwnerModeAccess(t *testing.T) {
	needRoot(t, "create segments as root and open them as another uid")
	exe := testproc.ExeForOthers(t)
	for _, spec := range []string{posixSpec(), sysvSpec()} {
		for _, mode := range []os.FileMode{0o600, 0o644} {
			s, err := segment.Create(spec, 4096, segment.WithMode(mode))
			require.NoError(t, err)
			require.NoError(t, s.Close())

			out := deniedChild.RunAsUser(t, exe, victimUID, victimUID, spec, "rw")
			require.Contains(t, out, "perm=true", "%s %04o: %s", spec, mode, out)
			require.Contains(t, out, fmt.Sprintf("segment open %s: owned by uid 0 (root) (group 0 (root)), mode %04o: this process (euid %d, egid %d) needs read-write access (it is opened read-write; segment.ReadOnly() asks for read access only): ", spec, mode, victimUID, victimUID), out)
			require.True(t, strings.HasSuffix(strings.TrimSpace(out), "permission denied"), out)

			out = deniedChild.RunAsUser(t, exe, victimUID, victimUID, spec, "ro")
			if mode == 0o644 {
				require.Equal(t, "ok\n", out, "%s: others may read a 0644 segment", spec)
			} else {
				require.Contains(t, out, fmt.Sprintf("owned by uid 0 (root) (group 0 (root)), mode 0600: this process (euid %d, egid %d) needs read access: ", victimUID, victimUID), out)
			}
			require.NoError(t, segment.Remove(spec))
		}
	}
}
