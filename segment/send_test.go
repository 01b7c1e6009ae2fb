package segment_test

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/shmkit/shmkit/internal/shmerr"
	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/segment"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// connPair returns two connected Unix sockets of type typ in this process.
func connPair(t *testing.T, typ int) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	var conns [2]*net.UnixConn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "sock"+strconv.Itoa(i))
		c, err := net.FileConn(f)
		f.Close()
		require.NoError(t, err)
		conns[i] = c.(*net.UnixConn)
		t.Cleanup(func() { conns[i].Close() })
	}
	return conns[0], conns[1]
}

func TestSendReceiveInProcess(t *testing.T) {
	ftokFile := filepath.Join(t.TempDir(), "ftok")
	require.NoError(t, os.WriteFile(ftokFile, nil, 0o600))
	for _, typ := range []int{unix.SOCK_STREAM, unix.SOCK_SEQPACKET, unix.SOCK_DGRAM} {
		for name, spec := range map[string]string{
			"posix":     posixSpec(),
			"file":      "file:" + filepath.Join(t.TempDir(), "seg"),
			"sysv":      sysvSpec(),
			"sysv-ftok": "sysv:ftok:" + ftokFile + ":" + strconv.Itoa(1+int(uniqueKey()&0x7f)),
			"memfd":     "memfd:" + testproc.UniqueName("memfd"),
		} {
			t.Run(fmt.Sprintf("%s/type%d", name, typ), func(t *testing.T) {
				a, b := connPair(t, typ)
				s := create(t, spec, 3*4096)
				fill(s.Bytes(), 21)
				// Two back to back: a stream receiver must not read past the first.
				require.NoError(t, segment.Send(a, s))
				require.NoError(t, segment.Send(a, s))
				for range 2 {
					r, err := segment.Receive(b)
					require.NoError(t, err)
					require.Equal(t, s.Spec(), r.Spec())
					require.Equal(t, s.Size(), r.Size())
					require.False(t, r.ReadOnly())
					require.NoError(t, checkFill(r.Bytes(), 21))
					fill(r.Bytes(), 22)
					require.NoError(t, checkFill(s.Bytes(), 22))
					require.NoError(t, r.Close())
					fill(s.Bytes(), 21)
				}
			})
		}
	}
}

func TestSendReceiveFDBackend(t *testing.T) {
	a, b := connPair(t, unix.SOCK_STREAM)
	s := create(t, posixSpec(), 4096)
	fill(s.Bytes(), 2)
	// A posix object by descriptor is unsealed: both ends must say so.
	byFD, err := segment.Open("fd:"+strconv.Itoa(int(s.File().Fd())), segment.WithUnsealed())
	require.NoError(t, err)
	t.Cleanup(func() { byFD.Close() })
	require.NoError(t, segment.Send(a, byFD))
	_, err = segment.Receive(b)
	require.ErrorIs(t, err, shmerr.ErrUntrusted)
	require.NoError(t, segment.Send(a, byFD))
	r, err := segment.Receive(b, segment.WithUnsealed())
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	require.Equal(t, segment.BackendFD, r.Spec().Backend)
	require.Equal(t, int(r.File().Fd()), r.Spec().FD, "spec names the received descriptor")
	require.NoError(t, checkFill(r.Bytes(), 2))
}

func TestSendReadOnlyStaysReadOnly(t *testing.T) {
	for name, spec := range map[string]string{
		"posix": posixSpec(),
		"sysv":  sysvSpec(),
	} {
		t.Run(name, func(t *testing.T) {
			a, b := connPair(t, unix.SOCK_STREAM)
			w := create(t, spec, 4096)
			fill(w.Bytes(), 6)
			ro, err := segment.Open(spec, segment.ReadOnly())
			require.NoError(t, err)
			t.Cleanup(func() { ro.Close() })
			require.NoError(t, segment.Send(a, ro))
			r, err := segment.Receive(b) // asks for read-write
			require.NoError(t, err)
			t.Cleanup(func() { r.Close() })
			require.True(t, r.ReadOnly())
			require.Equal(t, "r-", mappingPerms(t, r.Bytes()))
			require.NoError(t, checkFill(r.Bytes(), 6))

			// And ReadOnly() on the receiving side of a writable segment.
			require.NoError(t, segment.Send(a, w))
			r2, err := segment.Receive(b, segment.ReadOnly())
			require.NoError(t, err)
			t.Cleanup(func() { r2.Close() })
			require.Equal(t, "r-", mappingPerms(t, r2.Bytes()))
		})
	}
}

func TestSendClosed(t *testing.T) {
	a, _ := connPair(t, unix.SOCK_STREAM)
	s := create(t, posixSpec(), 4096)
	require.NoError(t, s.Close())
	require.ErrorIs(t, segment.Send(a, s), fs.ErrClosed)
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

func TestReceiveGarbage(t *testing.T) {
	memfd := create(t, "memfd:"+testproc.UniqueName("memfd"), 4096)
	valid := func() []byte {
		// A well-formed header for a 4096-byte memfd named "x".
		h := make([]byte, 28, 29)
		copy(h, "SHMS")
		h[4], h[5], h[6] = 1, byte(segment.BackendMemfd), 2
		binary.LittleEndian.PutUint64(h[8:], 4096)
		binary.LittleEndian.PutUint16(h[24:], 1)
		return append(h, 'x')
	}
	mod := func(f func(m []byte) []byte) []byte { return f(valid()) }
	mfd := int(memfd.File().Fd())
	for _, tc := range []struct {
		name string
		msg  []byte
		fds  []int
		want string
	}{
		{"bad magic", mod(func(m []byte) []byte { m[0] = 'X'; return m }), []int{mfd}, "not a segment message"},
		{"bad version", mod(func(m []byte) []byte { m[4] = 9; return m }), []int{mfd}, "not a segment message"},
		{"unknown backend", mod(func(m []byte) []byte { m[5] = 77; return m }), []int{mfd}, "unknown backend 77"},
		{"bad name", mod(func(m []byte) []byte { m[28] = '/'; return m }), []int{mfd}, "memfd name must not contain '/'"},
		{"no fd", valid(), nil, "want exactly 1 descriptor, got 0"},
		{"two fds", valid(), []int{mfd, mfd}, "want exactly 1 descriptor, got 2"},
		{"too big", mod(func(m []byte) []byte { binary.LittleEndian.PutUint64(m[8:], 1<<20); return m }), []int{mfd}, "sender mapped 1048576"},
		{"sysv with fd", mod(func(m []byte) []byte {
			m[5], m[6] = byte(segment.BackendSysV), 2
			binary.LittleEndian.PutUint32(m[20:], 0x1234)
			binary.LittleEndian.PutUint16(m[24:], 0)
			return m[:28]
		}), []int{mfd}, "came with a descriptor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, typ := range []int{unix.SOCK_STREAM, unix.SOCK_SEQPACKET} {
				a, b := connPair(t, typ)
				before := openFDs(t)
				var oob []byte
				if tc.fds != nil {
					oob = unix.UnixRights(tc.fds...)
				}
				_, _, err := a.WriteMsgUnix(tc.msg, oob, nil)
				require.NoError(t, err)
				_, err = segment.Receive(b)
				require.ErrorContains(t, err, tc.want)
				require.Equal(t, before, openFDs(t), "Receive leaked a descriptor")
			}
		})
	}
	t.Run("short", func(t *testing.T) {
		a, b := connPair(t, unix.SOCK_STREAM)
		_, err := a.Write([]byte("SHMS"))
		require.NoError(t, err)
		require.NoError(t, a.Close())
		_, err = segment.Receive(b)
		require.ErrorContains(t, err, "short message")
	})
}

func TestReceiveShrunkObject(t *testing.T) {
	// A posix object truncated by someone after the sender mapped it: the
	// receiver must refuse rather than map past the end.
	a, b := connPair(t, unix.SOCK_STREAM)
	s := create(t, posixSpec(), 8192)
	require.NoError(t, unix.Ftruncate(int(s.File().Fd()), 4096))
	require.NoError(t, segment.Send(a, s))
	_, err := segment.Receive(b)
	require.ErrorIs(t, err, fs.ErrInvalid)
	require.ErrorContains(t, err, "object is 4096 bytes, sender mapped 8192")
}
