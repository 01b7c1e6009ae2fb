package segment_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/segment"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestParseSpecErrors(t *testing.T) {
	long := strings.Repeat("x", 256)
	for _, tc := range []struct{ spec, why string }{
		{"", "missing backend prefix"},
		{"jobs", "missing backend prefix"},
		{"foo:bar", `unknown backend "foo"`},
		{"POSIX:/x", `unknown backend "POSIX"`},
		{"posix:", "posix name is empty"},
		{"posix:/", "posix name is empty"},
		{"posix:/a/b", "posix name must not contain '/'"},
		{"posix://a", "posix name must not contain '/'"},
		{"posix:/..", `posix name must not be ".."`},
		{"posix:/.", `posix name must not be "."`},
		{"posix:/a\x00b", "posix name must not contain NUL"},
		{"posix:/" + long, "posix name is 256 bytes long, limit 255"},
		{"file:", "file path is empty"},
		{"file:/a\x00", "file path must not contain NUL"},
		{"file:/" + strings.Repeat("a", 5000), "file path is 5001 bytes long"},
		{"sysv:", "sysv key is empty"},
		{"sysv:0xZZ", `sysv key "0xZZ": invalid hex`},
		{"sysv:0x", `sysv key "0x": invalid hex`},
		{"sysv:0x+1", `sysv key "0x+1": invalid hex`},
		{"sysv:0x100000000", `sysv key "0x100000000": more than 32 bits`},
		{"sysv:4294967296", `sysv key "4294967296": does not fit in 32 bits`},
		{"sysv:-2147483649", `does not fit in 32 bits`},
		{"sysv:abc", `sysv key "abc": invalid decimal`},
		{"sysv:0", `sysv key "0" is IPC_PRIVATE`},
		{"sysv:0x0", `sysv key "0x0" is IPC_PRIVATE`},
		{"sysv:ftok:/tmp", "sysv ftok wants ftok:PATH:ID"},
		{"sysv:ftok::7", "sysv ftok path is empty"},
		{"sysv:ftok:/tmp:0", `sysv ftok id "0": want 1..255`},
		{"sysv:ftok:/tmp:256", `sysv ftok id "256": want 1..255`},
		{"sysv:ftok:/tmp:x", `sysv ftok id "x": not a decimal number`},
		{"sysv:ftok:/tmp:-1", `sysv ftok id "-1": not a decimal number`},
		{"memfd:", "memfd name is empty"},
		{"memfd:a/b", "memfd name must not contain '/'"},
		{"memfd:" + long[:250], "memfd name is 250 bytes long, limit 249"},
		{"fd:", `fd "": not a non-negative decimal number`},
		{"fd:-1", `fd "-1": not a non-negative decimal number`},
		{"fd:+3", `fd "+3": not a non-negative decimal number`},
		{"fd:3x", `fd "3x": not a non-negative decimal number`},
		{"fd:99999999999", `fd "99999999999": out of range`},
	} {
		_, err := segment.ParseSpec(tc.spec)
		require.ErrorIs(t, err, segment.ErrBadSpec, "spec %q", tc.spec)
		require.ErrorContains(t, err, tc.why, "spec %q", tc.spec)
		require.ErrorContains(t, err, strconv.Quote(tc.spec), "the error quotes the spec")
		// Every entry point reports the same error without touching the OS.
		_, err = segment.Create(tc.spec, 4096)
		require.ErrorIs(t, err, segment.ErrBadSpec, "Create %q", tc.spec)
		_, err = segment.Open(tc.spec)
		require.ErrorIs(t, err, segment.ErrBadSpec, "Open %q", tc.spec)
		require.ErrorIs(t, segment.Remove(tc.spec), segment.ErrBadSpec, "Remove %q", tc.spec)
	}
}

func TestParseSpecRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		in, canon string
		want      segment.Spec
	}{
		{"posix:/jobs", "posix:/jobs", segment.Spec{Backend: segment.BackendPOSIX, Name: "jobs"}},
		{"posix:jobs", "posix:/jobs", segment.Spec{Backend: segment.BackendPOSIX, Name: "jobs"}},
		{"posix:/a:b", "posix:/a:b", segment.Spec{Backend: segment.BackendPOSIX, Name: "a:b"}},
		{"file:/var/x.shm", "file:/var/x.shm", segment.Spec{Backend: segment.BackendFile, Path: "/var/x.shm"}},
		{"file:rel/x", "file:rel/x", segment.Spec{Backend: segment.BackendFile, Path: "rel/x"}},
		{"sysv:0x1234", "sysv:0x1234", segment.Spec{Backend: segment.BackendSysV, Key: 0x1234}},
		{"sysv:0XABCD", "sysv:0xabcd", segment.Spec{Backend: segment.BackendSysV, Key: 0xabcd}},
		{"sysv:4660", "sysv:0x1234", segment.Spec{Backend: segment.BackendSysV, Key: 0x1234}},
		{"sysv:0xffffffff", "sysv:0xffffffff", segment.Spec{Backend: segment.BackendSysV, Key: -1}},
		{"sysv:-1", "sysv:0xffffffff", segment.Spec{Backend: segment.BackendSysV, Key: -1}},
		{"sysv:ftok:/etc/a:b:7", "sysv:ftok:/etc/a:b:7", segment.Spec{Backend: segment.BackendSysV, FtokPath: "/etc/a:b", FtokID: 7}},
		{"memfd:ring", "memfd:ring", segment.Spec{Backend: segment.BackendMemfd, Name: "ring"}},
		{"memfd:a b:c", "memfd:a b:c", segment.Spec{Backend: segment.BackendMemfd, Name: "a b:c"}},
		{"fd:3", "fd:3", segment.Spec{Backend: segment.BackendFD, FD: 3}},
		{"fd:007", "fd:7", segment.Spec{Backend: segment.BackendFD, FD: 7}},
	} {
		got, err := segment.ParseSpec(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
		require.Equal(t, tc.canon, got.String(), tc.in)
		again, err := segment.ParseSpec(got.String())
		require.NoError(t, err)
		require.Equal(t, got, again, "round trip of %q", tc.in)
	}
	require.Equal(t, "posix", segment.BackendPOSIX.String())
	require.Equal(t, "file", segment.BackendFile.String())
	require.Equal(t, "sysv", segment.BackendSysV.String())
	require.Equal(t, "memfd", segment.BackendMemfd.String())
	require.Equal(t, "fd", segment.BackendFD.String())
	require.Equal(t, "Backend(0)", segment.Backend(0).String())
	_, err := segment.ParseSpec(segment.Spec{}.String())
	require.ErrorIs(t, err, segment.ErrBadSpec, "a zero Spec names nothing")
}

func TestCreateExisting(t *testing.T) {
	for name, spec := range map[string]string{
		"posix": posixSpec(),
		"file":  "file:" + filepath.Join(t.TempDir(), "seg"),
		"sysv":  sysvSpec(),
	} {
		t.Run(name, func(t *testing.T) {
			s := create(t, spec, 4096)
			fill(s.Bytes(), 3)
			_, err := segment.Create(spec, 4096)
			require.ErrorIs(t, err, fs.ErrExist)
			require.ErrorContains(t, err, spec)
			// The failed Create neither removed nor changed the original.
			require.NoError(t, checkFill(s.Bytes(), 3))
			s2, err := segment.Open(spec)
			require.NoError(t, err)
			require.NoError(t, checkFill(s2.Bytes(), 3))
			require.NoError(t, s2.Close())
		})
	}
}

func TestMissing(t *testing.T) {
	missing := map[string]string{
		"posix": posixSpec(),
		"file":  "file:" + filepath.Join(t.TempDir(), "nope"),
		"sysv":  sysvSpec(),
		"ftok":  "sysv:ftok:" + filepath.Join(t.TempDir(), "nope") + ":1",
		"memfd": "memfd:" + testproc.UniqueName("memfd"),
		"fd":    "fd:" + strconv.Itoa(closedFD(t)),
	}
	for name, spec := range missing {
		t.Run(name, func(t *testing.T) {
			_, err := segment.Open(spec)
			require.ErrorIs(t, err, fs.ErrNotExist)
			require.ErrorContains(t, err, spec)
			switch name {
			case "memfd":
				require.NoError(t, segment.Remove(spec), "memfd Remove is a no-op")
			case "fd":
				require.ErrorIs(t, segment.Remove(spec), errors.ErrUnsupported)
			default:
				err := segment.Remove(spec)
				require.ErrorIs(t, err, fs.ErrNotExist)
				require.ErrorContains(t, err, spec)
			}
		})
	}
}

// closedFD returns a descriptor number that is not open in this process.
func closedFD(t *testing.T) int {
	f, err := os.Open(os.DevNull)
	require.NoError(t, err)
	fd := int(f.Fd())
	require.NoError(t, f.Close())
	return fd
}

func TestRemoveThenOpen(t *testing.T) {
	for name, spec := range map[string]string{
		"posix": posixSpec(),
		"file":  "file:" + filepath.Join(t.TempDir(), "seg"),
		"sysv":  sysvSpec(),
	} {
		t.Run(name, func(t *testing.T) {
			s := create(t, spec, 4096)
			fill(s.Bytes(), 5)
			require.NoError(t, segment.Remove(spec))
			// Still mapped here after Remove.
			require.NoError(t, checkFill(s.Bytes(), 5))
			_, err := segment.Open(spec)
			require.ErrorIs(t, err, fs.ErrNotExist)
			// The name is free again.
			s2 := create(t, spec, 4096)
			require.Equal(t, make([]byte, 4096), s2.Bytes(), "a new object starts zeroed")
			require.NoError(t, s.Close())
		})
	}
}

func TestZeroLengthObject(t *testing.T) {
	t.Run("posix", func(t *testing.T) {
		name := testproc.UniqueName("empty")
		f, err := os.OpenFile("/dev/shm/"+name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		require.NoError(t, err)
		f.Close()
		t.Cleanup(func() { os.Remove("/dev/shm/" + name) })
		_, err = segment.Open("posix:/" + name)
		require.ErrorIs(t, err, segment.ErrEmptyObject)
		require.ErrorContains(t, err, name)
	})
	t.Run("file", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "empty")
		require.NoError(t, os.WriteFile(p, nil, 0o600))
		_, err := segment.Open("file:" + p)
		require.ErrorIs(t, err, segment.ErrEmptyObject)
	})
	t.Run("memfd-by-fd", func(t *testing.T) {
		fd, err := unix.MemfdCreate("empty", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		require.NoError(t, err)
		t.Cleanup(func() { unix.Close(fd) })
		// Sealed, so that emptiness is the only thing wrong with it.
		_, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW)
		require.NoError(t, err)
		_, err = segment.Open("fd:" + strconv.Itoa(fd))
		require.ErrorIs(t, err, segment.ErrEmptyObject)
	})
	t.Run("create-size", func(t *testing.T) {
		for _, size := range []int{0, -1} {
			spec := posixSpec()
			_, err := segment.Create(spec, size)
			require.ErrorIs(t, err, fs.ErrInvalid)
			require.ErrorContains(t, err, "size")
			_, err = segment.Open(spec)
			require.ErrorIs(t, err, fs.ErrNotExist, "a rejected Create leaves nothing")
		}
	})
}

func TestRefusesSymlinksAndNonRegular(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	require.NoError(t, os.WriteFile(target, make([]byte, 4096), 0o600))
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(target, link))

	_, err := segment.Open("file:" + link)
	require.ErrorIs(t, err, syscall.ELOOP, "Open must not follow a symlink")
	_, err = segment.Create("file:"+link, 4096)
	require.ErrorIs(t, err, fs.ErrExist, "Create must not follow a symlink")

	_, err = segment.Open("file:" + os.DevNull)
	require.ErrorContains(t, err, "not a regular file")
	_, err = segment.Open("file:" + dir)
	require.Error(t, err)

	// A pipe handed over as fd:N is refused, read-only or not, without
	// blocking on it.
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { pr.Close(); pw.Close() })
	for _, opts := range [][]segment.Option{nil, {segment.ReadOnly()}} {
		_, err = segment.Open("fd:"+strconv.Itoa(int(pr.Fd())), opts...)
		require.ErrorContains(t, err, "not a regular file")
	}
}

func TestModes(t *testing.T) {
	// The umask is process-wide; this test does not run in parallel.
	old := unix.Umask(0o022)
	t.Cleanup(func() { unix.Umask(old) })

	specs := map[string]func() string{
		"posix": posixSpec,
		"file":  func() string { return "file:" + filepath.Join(t.TempDir(), "seg") },
		"sysv":  sysvSpec,
		"memfd": func() string { return "memfd:" + testproc.UniqueName("memfd") },
	}
	for name, mk := range specs {
		t.Run(name, func(t *testing.T) {
			s := create(t, mk(), 4096)
			require.Equal(t, os.FileMode(0o600), modeOf(t, s), "default mode")
			// 0666 survives a 022 umask only if Create applies it with fchmod.
			s = create(t, mk(), 4096, segment.WithMode(0o666))
			require.Equal(t, os.FileMode(0o666), modeOf(t, s))
			s = create(t, mk(), 4096, segment.WithMode(0o640))
			require.Equal(t, os.FileMode(0o640), modeOf(t, s))
		})
	}
}

func modeOf(t *testing.T, s *segment.Segment) os.FileMode {
	t.Helper()
	if f := s.File(); f != nil {
		var st unix.Stat_t
		require.NoError(t, unix.Fstat(int(f.Fd()), &st))
		return os.FileMode(st.Mode & 0o7777)
	}
	key, err := s.Spec().SysVKey()
	require.NoError(t, err)
	id, err := unix.SysvShmGet(int(key), 0, 0)
	require.NoError(t, err)
	var desc unix.SysvShmDesc
	_, err = unix.SysvShmCtl(id, unix.IPC_STAT, &desc)
	require.NoError(t, err)
	return os.FileMode(desc.Perm.Mode & 0o777)
}

func TestReadOnly(t *testing.T) {
	memfdName := testproc.UniqueName("memfd")
	for name, spec := range map[string]string{
		"posix": posixSpec(),
		"file":  "file:" + filepath.Join(t.TempDir(), "seg"),
		"sysv":  sysvSpec(),
		"memfd": "memfd:" + memfdName,
	} {
		t.Run(name, func(t *testing.T) {
			w := create(t, spec, 8192)
			require.False(t, w.ReadOnly())
			require.Equal(t, "rw", mappingPerms(t, w.Bytes()))
			fill(w.Bytes(), 9)

			r, err := segment.Open(spec, segment.ReadOnly())
			require.NoError(t, err)
			t.Cleanup(func() { r.Close() })
			require.True(t, r.ReadOnly())
			require.Equal(t, "r-", mappingPerms(t, r.Bytes()), "read-only segment must be mapped PROT_READ")
			require.NoError(t, checkFill(r.Bytes(), 9))
			// Writes through the writable mapping show through the read-only one.
			fill(w.Bytes(), 10)
			require.NoError(t, checkFill(r.Bytes(), 10))
			if f := r.File(); f != nil {
				fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
				require.NoError(t, err)
				require.Equal(t, unix.O_RDONLY, fl&unix.O_ACCMODE, "opened O_RDONLY")
			}
		})
	}
	_, err := segment.Create(posixSpec(), 4096, segment.ReadOnly())
	require.ErrorIs(t, err, fs.ErrInvalid)
}

// mappingPerms returns the read/write permission letters ("rw", "r-") of the
// mapping that holds b, from /proc/self/maps. It proves PROT_READ without
// faulting.
func mappingPerms(t *testing.T, b []byte) string {
	t.Helper()
	addr, err := strconv.ParseUint(strings.TrimPrefix(fmt.Sprintf("%p", &b[0]), "0x"), 16, 64)
	require.NoError(t, err)
	maps, err := os.ReadFile("/proc/self/maps")
	require.NoError(t, err)
	for _, line := range strings.Split(string(maps), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		l, _ := strconv.ParseUint(lo, 16, 64)
		h, _ := strconv.ParseUint(hi, 16, 64)
		if addr >= l && addr < h {
			require.Equal(t, byte('s'), fields[1][3], "mapping must be shared: %s", line)
			return fields[1][:2]
		}
	}
	t.Fatalf("address %#x not in /proc/self/maps", addr)
	return ""
}

func TestMemfdSeals(t *testing.T) {
	s := create(t, "memfd:"+testproc.UniqueName("memfd"), 4096)
	fd := s.File().Fd()
	seals, err := unix.FcntlInt(fd, unix.F_GET_SEALS, 0)
	require.NoError(t, err)
	require.Equal(t, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL, seals)
	require.ErrorIs(t, unix.Ftruncate(int(fd), 0), unix.EPERM, "shrink must be refused")
	require.ErrorIs(t, unix.Ftruncate(int(fd), 8192), unix.EPERM, "grow must be refused")
	_, err = unix.FcntlInt(fd, unix.F_ADD_SEALS, unix.F_SEAL_WRITE)
	require.ErrorIs(t, err, unix.EPERM, "seals must be sealed")
}

// TestCannotFault: a memfd from Create, opened again by descriptor, is
// reported as unable to fault where the kernel cannot refuse a refault
// (as this machine's overcommit mode says); named objects, sysv and an
// unsealed memfd never are, nor a sealed memfd mapped past its end.
func TestCannotFault(t *testing.T) {
	want := segment.RefaultCannotFail()
	t.Logf("refault cannot fail here: %v", want)
	sealed := create(t, "memfd:"+testproc.UniqueName("memfd"), 4096)
	require.Equal(t, want, sealed.CannotFault(), "memfd from Create")
	byFD, err := segment.Open("fd:" + strconv.Itoa(int(sealed.File().Fd())))
	require.NoError(t, err)
	t.Cleanup(func() { byFD.Close() })
	require.Equal(t, want, byFD.CannotFault(), "the same memfd opened by descriptor")
	fd := int(sealed.File().Fd())
	require.Equal(t, want, segment.CannotFaultFD(fd, 4096))
	require.False(t, segment.CannotFaultFD(fd, 8192), "a mapping past the sealed size")

	for name, spec := range map[string]string{"posix": posixSpec(), "sysv": sysvSpec()} {
		s := create(t, spec, 4096)
		require.False(t, s.CannotFault(), name)
	}

	ufd, err := unix.MemfdCreate(testproc.UniqueName("unsealed"), unix.MFD_CLOEXEC)
	require.NoError(t, err)
	f := os.NewFile(uintptr(ufd), "unsealed")
	t.Cleanup(func() { f.Close() })
	require.NoError(t, unix.Ftruncate(ufd, 4096))
	u, err := segment.Open("fd:"+strconv.Itoa(ufd), segment.WithUnsealed())
	require.NoError(t, err)
	t.Cleanup(func() { u.Close() })
	require.False(t, u.CannotFault(), "unsealed memfd")

	// The overcommit mode decides for a sealed memfd: under strict
	// overcommit a punched-out page may be refused (SIGBUS).
	mode := filepath.Join(t.TempDir(), "overcommit_memory")
	restore := segment.SetOvercommitFile(mode)
	t.Cleanup(restore)
	for content, want := range map[string]bool{"2\n": false, "1\n": true, "": false, "x": false} {
		require.NoError(t, os.WriteFile(mode, []byte(content), 0o600))
		require.Equal(t, want, segment.CannotFaultFD(fd, 4096), "overcommit_memory %q", content)
	}
	require.NoError(t, os.Remove(mode))
	require.False(t, segment.CannotFaultFD(fd, 4096), "overcommit mode unreadable")
}

func TestParseRelease(t *testing.T) {
	for r, want := range map[string][3]int{
		"6.18.0-foo": {6, 18, 1}, "5.2": {5, 2, 1}, "4.19.112+": {4, 19, 1},
		"": {0, 0, 0}, "6": {0, 0, 0}, "x.1": {0, 0, 0}, "6.x": {0, 0, 0},
	} {
		major, minor, ok := segment.ParseRelease(r)
		if ok != (want[2] == 1) || ok && (major != want[0] || minor != want[1]) {
			t.Errorf("parseRelease(%q) = %d, %d, %v; want %v", r, major, minor, ok, want)
		}
	}
}

// TestReceiveShrinkThenSeal: a peer that shrinks a memfd and then seals it
// between the receiver's size check and its seal check must not get it
// mapped past its end (touching that would be SIGBUS): the receiver reads
// the size again once the seals are there, and refuses the object as
// smaller than the sender said.
func TestReceiveShrinkThenSeal(t *testing.T) {
	fd, err := unix.MemfdCreate(testproc.UniqueName("shrinkseal"), unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	require.NoError(t, err)
	f := os.NewFile(uintptr(fd), "shrinkseal")
	t.Cleanup(func() { f.Close() })
	require.NoError(t, unix.Ftruncate(fd, 2*4096))
	s, err := segment.Open("fd:"+strconv.Itoa(fd), segment.WithUnsealed())
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })

	a, b := connPair(t, unix.SOCK_STREAM)
	require.NoError(t, segment.Send(a, s))
	hooked := false
	segment.SetTestHookAdmitStat(func(int) {
		hooked = true
		require.NoError(t, unix.Ftruncate(fd, 4096))
		_, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW)
		require.NoError(t, err)
	})
	t.Cleanup(func() { segment.SetTestHookAdmitStat(nil) })
	r, err := segment.Receive(b)
	require.True(t, hooked, "the hook did not run")
	if err == nil {
		r.Close()
	}
	require.ErrorIs(t, err, fs.ErrInvalid)
	require.ErrorContains(t, err, "object is 4096 bytes, sender mapped 8192")
}

func TestCloseIdempotent(t *testing.T) {
	for name, spec := range map[string]string{
		"posix": posixSpec(),
		"sysv":  sysvSpec(),
		"memfd": "memfd:" + testproc.UniqueName("memfd"),
	} {
		t.Run(name, func(t *testing.T) {
			s := create(t, spec, 4096)
			require.NoError(t, s.Close())
			require.NoError(t, s.Close())
			require.Nil(t, s.Bytes())
			require.Zero(t, s.Size())
		})
	}
}

func TestOpenFDDoesNotTakeOwnership(t *testing.T) {
	s := create(t, "memfd:"+testproc.UniqueName("memfd"), 4096)
	fill(s.Bytes(), 1)
	fd := int(s.File().Fd())
	a, err := segment.Open("fd:" + strconv.Itoa(fd))
	require.NoError(t, err)
	require.NoError(t, checkFill(a.Bytes(), 1))
	require.NoError(t, a.Close())
	// fd is still open: opening it again works.
	b, err := segment.Open("fd:" + strconv.Itoa(fd))
	require.NoError(t, err)
	require.NoError(t, b.Close())
	_, err = segment.Create("fd:"+strconv.Itoa(fd), 4096)
	require.ErrorIs(t, err, errors.ErrUnsupported)
}

func TestOpenReadOnlyFDWritable(t *testing.T) {
	s := create(t, "memfd:"+testproc.UniqueName("memfd"), 4096)
	f, err := os.Open("/proc/self/fd/" + strconv.Itoa(int(s.File().Fd())))
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	spec := "fd:" + strconv.Itoa(int(f.Fd()))
	_, err = segment.Open(spec)
	require.ErrorIs(t, err, fs.ErrPermission)
	require.ErrorContains(t, err, "ReadOnly")
	r, err := segment.Open(spec, segment.ReadOnly())
	require.NoError(t, err)
	require.NoError(t, r.Close())
}

func TestReadOnlyFDReopened(t *testing.T) {
	// A read-only open of a writable descriptor gets a read-only File too,
	// so it cannot hand out write access.
	s := create(t, "memfd:"+testproc.UniqueName("memfd"), 4096)
	r, err := segment.Open("fd:"+strconv.Itoa(int(s.File().Fd())), segment.ReadOnly())
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	fl, err := unix.FcntlInt(r.File().Fd(), unix.F_GETFL, 0)
	require.NoError(t, err)
	require.Equal(t, unix.O_RDONLY, fl&unix.O_ACCMODE)
	_, err = r.File().Write([]byte{1})
	require.Error(t, err)
}

func TestMaxLengthNames(t *testing.T) {
	prefix := testproc.UniqueName("long") + "-"
	posix := "posix:/" + prefix + strings.Repeat("p", 255-len(prefix))
	s := create(t, posix, 4096)
	require.Len(t, s.Spec().Name, 255)
	memfd := "memfd:" + prefix + strings.Repeat("m", 249-len(prefix))
	m := create(t, memfd, 4096)
	o, err := segment.Open(memfd)
	require.NoError(t, err, "a 249-byte memfd name is found in /proc/self/fd")
	require.NoError(t, o.Close())
	require.NoError(t, m.Close())
}

func TestPopulate(t *testing.T) {
	for name, spec := range map[string]string{
		"posix": posixSpec(),
		"sysv":  sysvSpec(),
		"memfd": "memfd:" + testproc.UniqueName("memfd"),
	} {
		t.Run(name, func(t *testing.T) {
			s := create(t, spec, 1<<20, segment.WithPopulate())
			fill(s.Bytes(), 4)
			require.NoError(t, checkFill(s.Bytes(), 4))
		})
	}
}

func TestSysVExclusiveOfFtok(t *testing.T) {
	// ftok and a numeric spec naming the same key meet the same segment.
	p := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(p, nil, 0o600))
	ftokSpec := "sysv:ftok:" + p + ":3"
	s := create(t, ftokSpec, 4096)
	fill(s.Bytes(), 8)
	key, err := segment.Ftok(p, 3)
	require.NoError(t, err)
	byKey := fmt.Sprintf("sysv:0x%x", uint32(key))
	_, err = segment.Create(byKey, 4096)
	require.ErrorIs(t, err, fs.ErrExist)
	o, err := segment.Open(byKey)
	require.NoError(t, err)
	require.NoError(t, checkFill(o.Bytes(), 8))
	require.NoError(t, o.Close())
}
