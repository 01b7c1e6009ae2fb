package segment_test

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/segment"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	if !testproc.IsChild() {
		// Children inherit this. Under -race a Go process sleeps 1s at exit
		// (GORACE atexit_sleep_ms defaults to 1000) so that other threads can
		// report; our children are single-purpose and are waited for, so the
		// sleep would only add a second per child.
		os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	}
	testproc.Main(m)
}

// fill writes a pattern derived from seed into b.
func fill(b []byte, seed byte) {
	for i := range b {
		b[i] = byte(i*7) + seed
	}
}

// checkFill reports the first byte of b that does not hold seed's pattern.
func checkFill(b []byte, seed byte) error {
	for i := range b {
		if want := byte(i*7) + seed; b[i] != want {
			return fmt.Errorf("byte %d = %#x, want %#x (seed %d)", i, b[i], want, seed)
		}
	}
	return nil
}

// attachChild attaches a segment, checks its size and contents, writes the
// next pattern and prints the spec it got. args: how target size seedIn seedOut
//
//	how = open:      target is a spec
//	how = open-unsealed: target is a spec; Open it WithUnsealed
//	how = recv-fd3:  fd 3 is a connected Unix socket; Receive on it
//	how = recv-dial: target is a socket path; dial it and Receive
var attachChild = testproc.Register("segment-attach", func(args []string) error {
	if len(args) != 5 {
		return fmt.Errorf("want 5 args, got %q", args)
	}
	how, target := args[0], args[1]
	size, _ := strconv.Atoi(args[2])
	seedIn, _ := strconv.Atoi(args[3])
	seedOut, _ := strconv.Atoi(args[4])
	var s *segment.Segment
	var err error
	switch how {
	case "open":
		s, err = segment.Open(target)
	case "open-unsealed":
		s, err = segment.Open(target, segment.WithUnsealed())
	case "recv-fd3":
		var c net.Conn
		c, err = net.FileConn(os.NewFile(3, "sock"))
		if err == nil {
			s, err = segment.Receive(c.(*net.UnixConn))
		}
	case "recv-dial":
		var c *net.UnixConn
		c, err = net.DialUnix("unix", nil, &net.UnixAddr{Name: target, Net: "unix"})
		if err == nil {
			defer c.Close()
			s, err = segment.Receive(c)
		}
	default:
		return fmt.Errorf("unknown how %q", how)
	}
	if err != nil {
		return err
	}
	defer s.Close()
	if s.Size() != size || len(s.Bytes()) != size {
		return fmt.Errorf("size %d, len %d, want %d", s.Size(), len(s.Bytes()), size)
	}
	if err := checkFill(s.Bytes(), byte(seedIn)); err != nil {
		return err
	}
	fill(s.Bytes(), byte(seedOut))
	fmt.Printf("spec=%s\n", s.Spec())
	return s.Close()
})

var keySeq atomic.Int32

// uniqueKey returns a SysV key unlikely to collide with anything else on the
// machine: a fixed high prefix, this process's pid and a sequence number.
func uniqueKey() int32 {
	return int32(0x40000000 | (os.Getpid()&0x3fffff)<<7 | int(keySeq.Add(1)&0x7f))
}

func sysvSpec() string { return fmt.Sprintf("sysv:0x%x", uniqueKey()) }

func posixSpec() string { return "posix:/" + testproc.UniqueName("seg") }

// create makes a segment and arranges for it to be closed and removed.
func create(t *testing.T, spec string, size int, opts ...segment.Option) *segment.Segment {
	t.Helper()
	s, err := segment.Create(spec, size, opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		s.Close()
		removeQuietly(t, spec)
	})
	return s
}

func removeQuietly(t *testing.T, spec string) {
	if err := segment.Remove(spec); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("cleanup: %v", err)
	}
}

// roundTrip runs the attach child on how/target and checks both directions.
func roundTrip(t *testing.T, s *segment.Segment, run func(args ...string) string, how, target string) string {
	t.Helper()
	fill(s.Bytes(), 11)
	out := run(how, target, strconv.Itoa(s.Size()), "11", "42")
	require.NoError(t, checkFill(s.Bytes(), 42), "parent does not see the child's writes")
	return out
}

func runChild(t *testing.T) func(args ...string) string {
	return func(args ...string) string { return attachChild.Run(t, args...) }
}

func TestCrossProcessNamed(t *testing.T) {
	ftokFile := filepath.Join(t.TempDir(), "ftok")
	require.NoError(t, os.WriteFile(ftokFile, nil, 0o600))
	specs := map[string]string{
		"posix":     posixSpec(),
		"file":      "file:" + filepath.Join(t.TempDir(), "seg"),
		"sysv-key":  sysvSpec(),
		"sysv-dec":  fmt.Sprintf("sysv:%d", uniqueKey()),
		"sysv-ftok": "sysv:ftok:" + ftokFile + ":" + strconv.Itoa(1+int(uniqueKey()&0x7f)),
	}
	for name, spec := range specs {
		t.Run(name, func(t *testing.T) {
			s := create(t, spec, 3*4096+17)
			out := roundTrip(t, s, runChild(t), "open", spec)
			want, err := segment.ParseSpec(spec)
			require.NoError(t, err)
			require.Contains(t, out, "spec="+want.String())
		})
	}
}

func TestFtokMatchesC(t *testing.T) {
	perl, err := exec.LookPath("perl")
	if err != nil {
		t.Skip("perl (whose IPC::SysV::ftok calls the C library) not installed")
	}
	p := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(p, nil, 0o600))
	for _, id := range []uint8{1, 7, 200, 255} {
		outb, err := exec.Command(perl, "-MIPC::SysV=ftok", "-e", "print ftok($ARGV[0], 0+$ARGV[1])", p, strconv.Itoa(int(id))).CombinedOutput()
		out := string(outb)
		if err != nil {
			t.Skipf("perl ftok: %v %s", err, out)
		}
		c, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		require.NoError(t, err, out)
		got, err := segment.Ftok(p, id)
		require.NoError(t, err)
		require.Equal(t, uint32(c), uint32(got), "id %d", id)
	}
	_, err = segment.Ftok(filepath.Join(t.TempDir(), "missing"), 1)
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestMemfdExtraFiles(t *testing.T) {
	name := testproc.UniqueName("memfd")
	s := create(t, "memfd:"+name, 8192+5)
	for _, target := range []string{"fd:3", "memfd:" + name} {
		t.Run(target, func(t *testing.T) {
			run := func(args ...string) string {
				cmd := attachChild.Command(t, args...)
				cmd.ExtraFiles = []*os.File{s.File()}
				p := testproc.StartCmd(t, cmd)
				require.NoError(t, p.Wait(time.Minute), p.Output())
				return p.Output()
			}
			roundTrip(t, s, run, "open", target)
		})
	}
}

func TestOpenMemfdWithoutDescriptor(t *testing.T) {
	name := testproc.UniqueName("memfd")
	// A child that was not handed the memfd cannot find it.
	cmd := attachChild.Command(t, "open", "memfd:"+name, "1", "0", "0")
	p := testproc.StartCmd(t, cmd)
	require.Error(t, p.Wait(time.Minute))
	require.Contains(t, p.Output(), "pass it by descriptor")

	_, err := segment.Open("memfd:" + name)
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.ErrorContains(t, err, "pass it by descriptor")
}

// socketpair returns two connected stream Unix sockets: one as a
// *net.UnixConn for this process, the other as an *os.File to hand a child.
func socketpair(t *testing.T) (*net.UnixConn, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	mine := os.NewFile(uintptr(fds[0]), "sock0")
	theirs := os.NewFile(uintptr(fds[1]), "sock1")
	c, err := net.FileConn(mine)
	mine.Close()
	require.NoError(t, err)
	t.Cleanup(func() { c.Close(); theirs.Close() })
	return c.(*net.UnixConn), theirs
}

func TestSendToChildOverSocketpair(t *testing.T) {
	name := testproc.UniqueName("memfd")
	s := create(t, "memfd:"+name, 4096)
	conn, theirs := socketpair(t)
	run := func(args ...string) string {
		cmd := attachChild.Command(t, args...)
		cmd.ExtraFiles = []*os.File{theirs}
		p := testproc.StartCmd(t, cmd)
		require.NoError(t, segment.Send(conn, s))
		require.NoError(t, p.Wait(time.Minute), p.Output())
		return p.Output()
	}
	out := roundTrip(t, s, run, "recv-fd3", "")
	require.Contains(t, out, "spec=memfd:"+name)
}

func TestSendToUnrelatedProcess(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	ftokFile := filepath.Join(t.TempDir(), "ftok")
	require.NoError(t, os.WriteFile(ftokFile, nil, 0o600))

	specs := map[string]string{
		"memfd":     "memfd:" + testproc.UniqueName("memfd"),
		"posix":     posixSpec(),
		"file":      "file:" + filepath.Join(t.TempDir(), "seg"),
		"sysv":      sysvSpec(),
		"sysv-ftok": "sysv:ftok:" + ftokFile + ":9",
	}
	for name, spec := range specs {
		t.Run(name, func(t *testing.T) {
			s := create(t, spec, 2*4096)
			run := func(args ...string) string {
				p := attachChild.Start(t, args...)
				require.NoError(t, ln.SetDeadline(time.Now().Add(time.Minute)))
				c, err := ln.AcceptUnix()
				require.NoError(t, err, p.Output())
				defer c.Close()
				require.NoError(t, segment.Send(c, s))
				require.NoError(t, p.Wait(time.Minute), p.Output())
				return p.Output()
			}
			out := roundTrip(t, s, run, "recv-dial", sock)
			require.Contains(t, out, "spec="+s.Spec().String())
		})
	}
}

// A posix or file object handed down by descriptor cannot be sealed: the
// child refuses it unless it accepts the risk with WithUnsealed.
func TestFDBackendCrossProcess(t *testing.T) {
	for name, spec := range map[string]string{
		"posix": posixSpec(),
		"file":  "file:" + filepath.Join(t.TempDir(), "seg"),
	} {
		t.Run(name, func(t *testing.T) {
			s := create(t, spec, 4096+1)
			start := func(args ...string) *testproc.Proc {
				cmd := attachChild.Command(t, args...)
				cmd.ExtraFiles = []*os.File{s.File()}
				return testproc.StartCmd(t, cmd)
			}
			p := start("open", "fd:3", strconv.Itoa(s.Size()), "0", "0")
			require.Error(t, p.Wait(time.Minute))
			require.Contains(t, p.Output(), "untrusted segment")
			require.Contains(t, p.Output(), "WithUnsealed")

			run := func(args ...string) string {
				p := start(args...)
				require.NoError(t, p.Wait(time.Minute), p.Output())
				return p.Output()
			}
			out := roundTrip(t, s, run, "open-unsealed", "fd:3")
			require.Contains(t, out, "spec=fd:3")
		})
	}
}
