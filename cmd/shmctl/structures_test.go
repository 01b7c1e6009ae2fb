package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/segment"
	"github.com/shmkit/shmkit/shmmap"
	"github.com/shmkit/shmkit/shmqueue"
	"github.com/stretchr/testify/require"
)

// semIDs returns the identifiers of the SysV semaphore sets on the host.
func semIDs(t *testing.T) map[int]bool {
	b, err := os.ReadFile("/proc/sysvipc/sem")
	require.NoError(t, err)
	ids := map[int]bool{}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 1 {
			id, err := strconv.Atoi(f[1])
			require.NoError(t, err)
			ids[id] = true
		}
	}
	return ids
}

func TestQueueListedAndRmRemovesSemSet(t *testing.T) {
	fspec := posixSpec(t, "ctl-queue")
	fq, err := shmqueue.Create[Item](fspec, 8)
	require.NoError(t, err)
	t.Cleanup(func() { _ = fq.Close() })
	require.NoError(t, fq.TryPush(Item{Seq: 1}))

	sspec := posixSpec(t, "ctl-queue-sysv")
	t.Cleanup(func() { _ = shmqueue.Remove(sspec) })
	sq, err := shmqueue.Create[Item](sspec, 8, shmqueue.WithBackend(shmqueue.BackendSysV))
	require.NoError(t, err)
	require.NoError(t, sq.TryPush(Item{Seq: 1}))

	res := runBin(t, "ls", "--json")
	rs := decodeList(t, res.stdout)
	for _, spec := range []string{fspec, sspec} {
		r := findSpec(rs, spec)
		require.NotNil(t, r, spec)
		require.Equal(t, "ok", r.Status, r.Error)
		require.Equal(t, "queue", r.Header.Kind)
		require.Equal(t, "main.Item", r.Header.Types[0].Name)
		require.Equal(t, uint64(8), r.Header.Capacity)
	}

	require.Equal(t, "futex", findSpec(rs, fspec).Live.SyncBackend)
	require.Equal(t, "sysv", findSpec(rs, sspec).Live.SyncBackend)
	for _, spec := range []string{fspec, sspec} {
		l := findSpec(rs, spec).Live
		require.Equal(t, uint64(1), *l.Len, spec)
		require.Equal(t, uint64(1), *l.In, spec)
		require.Equal(t, uint64(0), *l.Out, spec)
		require.False(t, *l.Closed)
	}
	res = runBin(t, "ls")
	require.Regexp(t, fspec+`\s+queue\s+main\.Item\s+8\s+1\s+\d+\s+creator=\d+/alive users=\d+\s+ok\n`, res.stdout)
	res = runIn("watch", "-n", "2", "-i", "10ms", fspec)
	require.Equal(t, 0, res.code, res.stderr)
	require.Regexp(t, `\s1\s+8\s+12\.5%\s+0\s+0\n$`, res.stdout)

	// The SysV backend's semaphore set goes with the queue.
	semID := int(findSpec(rs, sspec).Header.Params[4]) // shmqueue's paramSemID
	require.True(t, semIDs(t)[semID], "semaphore set %d exists", semID)
	require.NoError(t, sq.Close())
	res = runBin(t, "rm", sspec)
	require.Equal(t, 0, res.code, res.stderr)
	require.False(t, semIDs(t)[semID], "rm removed semaphore set %d", semID)
	_, err = segment.Open(sspec)
	require.Error(t, err)
}

func TestMapListed(t *testing.T) {
	spec := posixSpec(t, "ctl-map")
	m, err := shmmap.Create[uint64, Item](spec, 100)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	require.NoError(t, m.Put(7, Item{Seq: 7}))
	require.NoError(t, m.Put(8, Item{Seq: 8}))
	res := runBin(t, "ls")
	require.Regexp(t, spec+`\s+map\s+uint64,main\.Item\s+100\s+2\s+`, res.stdout, "LEN is read from the live table")
	st := runBin(t, "stat", "--json", spec)
	require.Equal(t, 0, st.code, st.stderr)
	var r Report
	require.NoError(t, json.Unmarshal([]byte(st.stdout), &r), st.stdout)
	require.NotNil(t, r.Live)
	require.Equal(t, uint64(2), *r.Live.Len)
}

// mapPutChild opens the map at args[0] and puts key 1; tests arm a crash
// point so that it dies holding a shard lock mid-Put.
var mapPutChild = testproc.Register("shmctl-map-put", func(args []string) error {
	m, err := shmmap.Open[uint64, Item](args[0])
	if err != nil {
		return err
	}
	return m.Put(1, Item{Seq: 1})
})

func TestMapDeadWriter(t *testing.T) {
	spec := posixSpec(t, "ctl-map-dead")
	m, err := shmmap.Create[uint64, Item](spec, 100, shmmap.WithShards(1))
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	cmd := mapPutChild.Command(t, spec)
	cmd.Env = append(cmd.Env, crashpoint.Arm("shmmap.put-mid", 1))
	p := testproc.StartCmd(t, cmd)
	require.Error(t, p.Wait(time.Minute), "child must die by SIGKILL")

	res := runBin(t, "stat", "--json", spec)
	require.Equal(t, 1, res.code, "a dead shard writer is stale: "+res.stdout)
	var r Report
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &r), res.stdout)
	require.Equal(t, "stale", r.Status)
	require.Len(t, r.Stale, 1)
	require.Equal(t, "dead-lock-owner", r.Stale[0].What)
	require.Contains(t, r.Stale[0].Detail, fmt.Sprintf("dead pid %d", p.Pid()))
	require.Contains(t, r.Stale[0].Detail, "leaving its insert half done")

	// The map repairs itself on the next operation; then it is healthy.
	v, ok := m.Get(1)
	require.True(t, ok, "the dead writer's logged Put is completed by the repair")
	require.Equal(t, uint64(1), v.Seq)
	res = runBin(t, "stat", "--json", spec)
	require.Equal(t, 0, res.code, res.stdout)
}

// queueChild opens the queue at args[0], pushes one item, says "ready" and
// stays attached (holding a member record) until killed.
var queueChild = testproc.Register("shmctl-queue", func(args []string) error {
	q, err := shmqueue.Open[Item](args[0])
	if err != nil {
		return err
	}
	if err := q.TryPush(Item{Seq: 9}); err != nil {
		return err
	}
	fmt.Println("ready")
	select {}
})

func TestQueueDeadParticipant(t *testing.T) {
	spec := posixSpec(t, "ctl-queue-dead")
	q, err := shmqueue.Create[Item](spec, 8)
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })

	p := startSaying(t, queueChild, "ready", spec)
	require.Equal(t, 0, runBin(t, "stat", spec).code, "a live participant is fine")

	p.Kill()
	res := runBin(t, "stat", "--json", spec)
	require.Equal(t, 1, res.code)
	var rep Report
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &rep))
	require.Equal(t, "stale", rep.Status)
	require.Equal(t, uint64(1), *rep.Live.Len, "the dead producer's committed item stays")
	require.Len(t, rep.Stale, 1)
	require.Equal(t, "dead-participant", rep.Stale[0].What)
	require.Contains(t, rep.Live.Details, Counter{Name: "dead handles", Value: 1})

	doc := runBin(t, "doctor", "--fix", spec)
	require.Equal(t, 1, doc.code)
	require.Contains(t, doc.stdout, spec+": dead-participant: 1 of 2 member records belong to dead processes")

	// The item is still delivered.
	it, err := q.TryPop()
	require.NoError(t, err)
	require.Equal(t, uint64(9), it.Seq)
}
