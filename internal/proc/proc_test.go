package proc

import (
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseStartTimeOddComm(t *testing.T) {
	// A command name with spaces and a ')' must not shift the fields.
	line := "1234 (a b) c) S 1 1 1 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10"
	st, err := parseStartTime([]byte(line))
	require.NoError(t, err)
	require.Equal(t, uint64(987654), st)
	_, err = parseStartTime([]byte("1 (x) S 1"))
	require.Error(t, err)
	_, err = parseStartTime([]byte("garbage"))
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
