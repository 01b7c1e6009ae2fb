package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmkit/shmkit/shmqueue"
)

// A SysV-backend queue's semaphore set is shown by stat (key and id, as
// ipcs lists them), and a set removed by another tool (the real ipcrm) is
// reported as exactly that, not as corruption; rm then cleans up.
func TestQueueSemSetShownAndRemovedByIpcrm(t *testing.T) {
	ipcrm, err := exec.LookPath("ipcrm")
	if err != nil {
		t.Skip("ipcrm (util-linux) is not installed")
	}
	spec := posixSpec(t, "ctl-queue-ipcrm")
	t.Cleanup(func() { _ = shmqueue.Remove(spec) })
	key := int32(0x5f000000 | int32(time.Now().UnixNano()&0xffffff))
	q, err := shmqueue.Create[Item](spec, 8, shmqueue.WithBackend(shmqueue.BackendSysV), shmqueue.WithSysVKey(key))
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	st, err := q.Stats()
	require.NoError(t, err)

	detail := func(r Report, name string) (uint64, bool) {
		for _, c := range r.Live.Details {
			if c.Name == name {
				return c.Value, true
			}
		}
		return 0, false
	}
	res := runBin(t, "stat", "--json", spec)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	var r Report
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &r), res.stdout)
	require.Equal(t, "ok", r.Status)
	k, ok := detail(r, "semaphore key")
	require.True(t, ok)
	require.Equal(t, uint64(uint32(key)), k)
	id, ok := detail(r, "semaphore id")
	require.True(t, ok)
	require.Equal(t, uint64(st.SemID), id)
	res = runBin(t, "stat", spec)
	require.Regexp(t, `semaphore key\s*[:=]?\s*\d+`, res.stdout)
	require.Regexp(t, fmt.Sprintf(`semaphore id\s*[:=]?\s*%d`, st.SemID), res.stdout)

	out, err := exec.Command(ipcrm, "-S", fmt.Sprintf("%#x", uint32(key))).CombinedOutput()
	require.NoError(t, err, "%s", out)

	res = runBin(t, "stat", "--json", spec)
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &r), res.stdout)
	require.NotEqual(t, "corrupt", r.Status, r.Error)
	require.Equal(t, "stale", r.Status)
	require.Len(t, r.Stale, 1)
	require.Equal(t, "semaphore-set-removed", r.Stale[0].What)
	require.Contains(t, r.Stale[0].Detail, fmt.Sprintf("key %#x, id %d", uint32(key), st.SemID))
	require.Contains(t, r.Stale[0].Detail, "cannot be used")
	require.Contains(t, r.Stale[0].Detail, "shmctl rm "+spec)
	require.False(t, r.Stale[0].Fixable)
	res = runBin(t, "stat", spec)
	require.Contains(t, res.stdout+res.stderr, "semaphore-set-removed")

	require.NoError(t, q.Close())
	res = runBin(t, "rm", spec)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.False(t, exists(t, spec))
}
