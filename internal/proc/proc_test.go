package proc

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stretchr/testify/require"
)

func TestParseStartTimeOddComm(t *testing.T) {
	// A command name with spaces and a ')' must not shift the fields.
	line := "1234 (a b) c) S 1 1 1 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10"
	st, err := parseStartTimeOnly([]byte(line))
	require.NoError(t, err)
	require.Equal(t, uint64(987654), st)
	_, err = parseStartTimeOnly([]byte("1 (x) S 1"))
	require.Error(t, err)
	_, err = parseStartTimeOnly([]byte("garbage"))
	require.Error(t, err)
}

func TestSelfAlive(t *testing.T) {
	me := Self()
	require.Equal(t, int32(os.Getpid()), me.PID)
	require.NotZero(t, me.Start)
	require.True(t, Alive(me))
	require.False(t, Alive(ID{PID: me.PID, Start: me.Start + 1}), "same pid, other start time is another process")
	require.False(t, Alive(ID{}))
}

func TestDeadChildIsNotAlive(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	pid := int32(cmd.Process.Pid)
	st, err := StartTime(pid)
	require.NoError(t, err)
	id := ID{PID: pid, Start: st}
	require.True(t, Alive(id))
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	require.False(t, Alive(id))
}

func parseStartTimeOnly(b []byte) (uint64, error) {
	_, st, err := parseStat(b)
	return st, err
}

func TestWordRoundTrip(t *testing.T) {
	id := ID{PID: 4194303, Start: 1<<42 + 12345}
	got := FromWord(id.Word())
	require.Equal(t, id.PID, got.PID)
	require.Equal(t, uint64(12345), got.Start)
	require.Zero(t, ID{}.Word())
	require.Zero(t, ID{PID: -5}.Word())
	require.Zero(t, ID{PID: MaxPID + 1}.Word())
	me := Self()
	require.True(t, Alive(FromWord(me.Word())), "a word of ourselves names a live process")
}

func TestThreadLiveness(t *testing.T) {
	require.False(t, ThreadDead(int32(unix.Gettid())))
	require.False(t, ThreadDead(int32(os.Getpid())))
	require.True(t, ThreadDead(0))
	require.False(t, NotThreadOf(int32(os.Getpid()), int32(unix.Gettid())))
}

func TestZombieIsDead(t *testing.T) {
	cmd := exec.Command("true")
	require.NoError(t, cmd.Start())
	pid := int32(cmd.Process.Pid)
	// Not reaped yet: a zombie once it exits.
	deadline := time.Now().Add(5 * time.Second)
	for !Dead(ID{PID: pid}) {
		require.True(t, time.Now().Before(deadline), "zombie pid %d never read as dead", pid)
		time.Sleep(time.Millisecond)
	}
	_ = cmd.Wait()
	require.True(t, Dead(ID{PID: pid}))
}

func TestParent(t *testing.T) {
	pp, err := Parent(int32(os.Getpid()))
	require.NoError(t, err)
	require.Equal(t, int32(os.Getppid()), pp)
	_, err = Parent(0)
	require.Error(t, err)
	// A command name with ") " in it does not shift the fields.
	fields, err := statFields([]byte("42 (a) b) S 7 42 42 0 -1"))
	require.NoError(t, err)
	require.Equal(t, "7", string(fields[1]))
}
