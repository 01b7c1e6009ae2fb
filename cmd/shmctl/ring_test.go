package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/shmring"
	"github.com/stretchr/testify/require"
)

// Item is the element type of the rings the tests create.
type Item struct {
	Seq uint64
	Val [8]byte
}

// pushChild opens the ring at args[0] and pushes args[1] items. With the
// crash point "ring.publishing" armed it dies between claiming and
// publishing an item, holding the producer role.
var pushChild = testproc.Register("shmctl-push", func(args []string) error {
	r, err := shmring.Open[Item](args[0])
	if err != nil {
		return err
	}
	defer r.Close()
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	for i := range n {
		// Claim and Publish (rather than Push) pass the "ring.publishing"
		// crash point.
		s, err := r.ClaimWait(context.Background(), 1)
		if err != nil {
			return err
		}
		s[0] = Item{Seq: uint64(i)}
		if err := r.Publish(1); err != nil {
			return err
		}
	}
	return nil
})

func createRing(t *testing.T, spec string, capacity int) *shmring.Ring[Item] {
	t.Helper()
	r, err := shmring.Create[Item](spec, capacity)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestRingLiveStateAndDeadProducer(t *testing.T) {
	spec := posixSpec(t, "ctl-ring")
	createRing(t, spec, 64)

	// The producer publishes two items and is SIGKILLed inside the third
	// Push, still holding the producer role.
	cmd := pushChild.Command(t, spec, "10")
	cmd.Env = append(cmd.Env, crashpoint.Arm("ring.publishing", 3))
	p := testproc.StartCmd(t, cmd)
	require.Error(t, p.Wait(time.Minute))
	require.Equal(t, -1, p.Cmd.ProcessState.ExitCode(), "killed by a signal: %s", p.Output())

	res := runBin(t, "stat", "--json", spec)
	require.Equal(t, 1, res.code, "a dead role is stale")
	var r Report
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &r), res.stdout)
	require.Equal(t, "stale", r.Status)
	require.Equal(t, "ring", r.Header.Kind)
	require.Equal(t, "main.Item", r.Header.Types[0].Name)
	require.Equal(t, uint64(64), r.Header.Capacity)
	require.NotNil(t, r.Live)
	require.Equal(t, uint64(2), *r.Live.Len)
	require.Equal(t, uint64(2), *r.Live.Tail)
	require.Equal(t, uint64(0), *r.Live.Head)
	require.Len(t, r.Live.Owners, 1)
	require.Equal(t, "producer", r.Live.Owners[0].Role)
	require.Equal(t, int32(p.Pid()), r.Live.Owners[0].PID)
	require.False(t, r.Live.Owners[0].Alive)
	require.Len(t, r.Stale, 1)
	require.Equal(t, "dead-role", r.Stale[0].What)

	res = runBin(t, "ls")
	require.Regexp(t, spec+`\s+ring\s+main\.Item\s+64\s+2\s+\d+\s+creator=\d+/alive producer=`+strconv.Itoa(p.Pid())+`/dead users=\d+\s+STALE\n`, res.stdout)

	res = runBin(t, "stat", spec)
	require.Contains(t, res.stdout, fmt.Sprintf("pid %d", p.Pid()))
	require.Regexp(t, `producer:\s+pid \d+ \(start \d+\), dead`, res.stdout)

	doc := runBin(t, "doctor", spec)
	require.Equal(t, 1, doc.code, "without --fix, a dead role is reported")
	require.Contains(t, doc.stdout, spec+": dead-role: the producer role is held by dead pid "+strconv.Itoa(p.Pid()))
	require.Contains(t, doc.stdout, "--fix repairs this")

	doc = runBin(t, "doctor", "--fix", spec)
	require.Equal(t, 0, doc.code, doc.stdout+doc.stderr)
	require.Contains(t, doc.stdout, spec+": fixed: released a ring role held by dead pid "+strconv.Itoa(p.Pid()))
	res = runBin(t, "stat", "--json", spec)
	require.Equal(t, 0, res.code, "repaired: no longer stale: "+res.stdout)
	require.Equal(t, 0, runBin(t, "doctor", spec).code)

	// A new producer resumes from the shared cursor after the repair.
	pushChild.Run(t, spec, "3")
	res = runBin(t, "stat", "--json", spec)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	r = Report{}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &r))
	require.Equal(t, uint64(5), *r.Live.Len)
	require.Empty(t, r.Live.Owners, "Close released the role")
	require.Equal(t, 0, runBin(t, "doctor", spec).code)
}

func TestWatchRing(t *testing.T) {
	spec := posixSpec(t, "ctl-watch-ring")
	ring := createRing(t, spec, 16)
	for i := range 4 {
		require.True(t, ring.TryPush(Item{Seq: uint64(i)}))
	}
	res := runIn("watch", "-n", "3", "-i", "20ms", spec)
	require.Equal(t, 0, res.code, res.stderr)
	lines := strings.Split(strings.TrimRight(res.stdout, "\n"), "\n")
	require.Len(t, lines, 4, res.stdout)
	require.Regexp(t, `TIME\s+LEN\s+CAP\s+FILL\s+IN/s\s+OUT/s`, lines[0])
	require.Regexp(t, `\d\d:\d\d:\d\d\.\d{3}\s+4\s+16\s+25\.0%\s+-\s+-`, lines[1])
	require.Regexp(t, `\s4\s+16\s+25\.0%\s+0\s+0\s*$`, lines[3])

	// The built binary exits 0 on SIGINT.
	cmd := exec.Command(shmctlBin(t), "watch", "-i", "10ms", spec)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	br := bufio.NewReader(out)
	for range 2 { // header and first line: it is running
		_, err := br.ReadString('\n')
		require.NoError(t, err)
	}
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	go io.Copy(io.Discard, br)
	require.NoError(t, cmd.Wait(), "SIGINT ends watch with status 0")
}

func TestByteRingListed(t *testing.T) {
	spec := posixSpec(t, "ctl-bytering")
	br, err := shmring.CreateBytes(spec, 1024)
	require.NoError(t, err)
	t.Cleanup(func() { _ = br.Close() })
	require.NoError(t, br.TryWrite([]byte("hello")))
	res := runBin(t, "ls", "--json")
	r := findSpec(decodeList(t, res.stdout), spec)
	require.NotNil(t, r)
	require.Equal(t, "bytering", r.Header.Kind)
	require.Equal(t, "ok", r.Status)
	require.Equal(t, uint64(16), *r.Live.Len, "an 8-byte header and 5 bytes padded to 8")
	require.Equal(t, "producer", r.Live.Owners[0].Role)
	require.True(t, r.Live.Owners[0].Alive)
}
