package main

import (
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
