package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"testing"

	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/layout"
	shsync "github.com/shmkit/shmkit/sync"
	"github.com/stretchr/testify/require"
)

// Guarded is a value with shared locks, the way values are meant to be used.
type Guarded struct {
	Count uint64
	Mu    shsync.Mutex
	Inner struct {
		Flag  uint32
		Locks [2]shsync.Mutex
	}
}

// lockChild opens the Guarded value at args[0], locks Mu, says "locked"
// and holds the lock until killed.
var lockChild = testproc.Register("shmctl-lock", func(args []string) error {
	v, err := layout.OpenValue[Guarded](args[0])
	if err != nil {
		return err
	}
	if err := v.Ptr().Mu.Lock(); err != nil {
		return err
	}
	v.Ptr().Count++
	fmt.Println("locked")
	select {}
})

func TestTypeLayoutFindsMutexes(t *testing.T) {
	ti, err := layout.DescribeOf[Guarded]()
	require.NoError(t, err)
	parsed, err := layout.ParseLayout(ti.Layout)
	require.NoError(t, err)
	tree := parsed.Type
	require.Equal(t, ti.Size, tree.Size)
	rt := reflect.TypeFor[Guarded]()
	mu, _ := rt.FieldByName("Mu")
	inner, _ := rt.FieldByName("Inner")
	locks, _ := inner.Type.FieldByName("Locks")
	mutexSize := uint64(reflect.TypeFor[shsync.Mutex]().Size())
	require.Equal(t, []layout.LayoutAt{
		{Path: "Mu", Off: uint64(mu.Offset)},
		{Path: "Inner.Locks[0]", Off: uint64(inner.Offset + locks.Offset)},
		{Path: "Inner.Locks[1]", Off: uint64(inner.Offset+locks.Offset) + mutexSize},
	}, tree.Find(mutexLayout, 100))
	require.Len(t, tree.Find(mutexLayout, 2), 2, "bounded")

	for _, bad := range []string{"", "amd64/le", "amd64/le struct{", "amd64/le [99999999999999999999]uint8",
		"amd64/le struct{A pointer@0}#8/8", "amd64/le struct{A uint8@x}#1/1", "amd64/le uint8 trailing",
		"amd64/le " + string(make([]byte, 100)), "amd64/le [1]" + repeat("[1]", 100) + "uint8",
		"amd64/le [4398046511104]struct{A uint64@0}#1024/8"} {
		_, err := layout.ParseLayout(bad)
		require.Error(t, err, "%q", bad)
	}
}

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}

func TestDeadLockOwnerReported(t *testing.T) {
	spec := posixSpec(t, "ctl-lock")
	v, err := layout.CreateValue[Guarded](spec)
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })

	p := startSaying(t, lockChild, "locked", spec)

	res := runBin(t, "ls")
	require.Regexp(t, spec+`\s+value\s+main\.Guarded\s+1\s+-\s+\d+\s+creator=\d+/alive lock Mu=`+strconv.Itoa(p.Pid())+`/alive users=\d+,\d+\s+ok\n`, res.stdout)

	p.Kill()
	res = runBin(t, "stat", "--json", spec)
	require.Equal(t, 1, res.code)
	var rep Report
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &rep))
	require.Equal(t, "stale", rep.Status)
	require.Equal(t, []Owner{{Role: "lock Mu", ProcInfo: ProcInfo{PID: int32(p.Pid()), Start: rep.Live.Owners[0].Start}}}, rep.Live.Owners)
	require.Equal(t, []Counter{{Name: "locks", Value: 3}}, rep.Live.Details)
	require.Len(t, rep.Stale, 1)
	require.Equal(t, "dead-lock-owner", rep.Stale[0].What)

	res = runBin(t, "ls")
	require.Regexp(t, spec+`\s.*lock Mu=`+strconv.Itoa(p.Pid())+`/dead .*STALE\n`, res.stdout)
	doc := runBin(t, "doctor", "--fix", spec)
	require.Equal(t, 1, doc.code, "the program, not shmctl, repairs what the lock guards")
	require.Contains(t, doc.stdout, spec+": dead-lock-owner: lock Mu is held by dead pid "+strconv.Itoa(p.Pid()))

	// The program's own recovery clears it.
	mu := &v.Ptr().Mu
	require.ErrorIs(t, mu.Lock(), shsync.ErrOwnerDead)
	require.NoError(t, mu.MarkConsistent())
	mu.Unlock()
	res = runBin(t, "stat", spec)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
}
