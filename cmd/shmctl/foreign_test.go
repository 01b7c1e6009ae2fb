package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// Objects that are not shmkit segments are listed only with --all, and
// nothing shmctl does to them (ls, stat, doctor, rm without --force)
// changes a byte, their mode, or their existence.
func TestForeignObjectsNeverTouched(t *testing.T) {
	junk := make([]byte, 8192)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range junk {
		junk[i] = byte(rng.UintN(256))
	}
	pspec := posixSpec(t, "ctl-foreign")
	ps, err := segment.Create(pspec, len(junk), segment.WithMode(0o640))
	require.NoError(t, err)
	copy(ps.Bytes(), junk)
	require.NoError(t, ps.Close())
	sspec := sysvSpec(t)
	ss, err := segment.Create(sspec, len(junk))
	require.NoError(t, err)
	copy(ss.Bytes(), junk)
	require.NoError(t, ss.Close())
	path := "/dev/shm/" + pspec[len("posix:/"):]
	var before unix.Stat_t
	require.NoError(t, unix.Stat(path, &before))

	res := runBin(t, "ls", "--json")
	require.Equal(t, 0, res.code)
	rs := decodeList(t, res.stdout)
	require.Nil(t, findSpec(rs, pspec), "not listed without --all")
	require.Nil(t, findSpec(rs, sspec))

	res = runBin(t, "ls", "--all", "--json")
	rs = decodeList(t, res.stdout)
	for _, spec := range []string{pspec, sspec} {
		r := findSpec(rs, spec)
		require.NotNil(t, r, spec)
		require.False(t, r.Shmkit)
		require.Equal(t, "foreign", r.Status)
		require.Equal(t, int64(len(junk)), r.Size)
		require.Nil(t, r.Header)
	}
	res = runBin(t, "ls", "--all")
	require.Regexp(t, pspec+`\s+-\s+-\s+-\s+-\s+8192\s+-\s+-\n`, res.stdout)

	require.Equal(t, 1, runBin(t, "stat", pspec).code)
	require.Equal(t, 1, runBin(t, "doctor", "--fix", pspec, sspec).code)
	require.Equal(t, 1, runBin(t, "rm", pspec, sspec).code)
	require.Equal(t, 1, runIn("watch", "-n", "1", pspec).code)

	for _, spec := range []string{pspec, sspec} {
		s, err := segment.Open(spec, segment.ReadOnly())
		require.NoError(t, err, "%s still exists", spec)
		require.True(t, bytes.Equal(junk, s.Bytes()), "%s unchanged", spec)
		require.NoError(t, s.Close())
	}
	var after unix.Stat_t
	require.NoError(t, unix.Stat(path, &after))
	require.Equal(t, before.Mode, after.Mode)
	require.Equal(t, before.Mtim, after.Mtim)

	// With --force rm removes them.
	res = runBin(t, "rm", "--force", pspec, sspec)
	require.Equal(t, 0, res.code, res.stderr)
	_, err = os.Stat(path)
	require.True(t, os.IsNotExist(err))
}

func TestMemfdCannotBeRemoved(t *testing.T) {
	name := testproc.UniqueName("ctl-memfd-rm")
	v, err := layout.CreateValue[Counters]("memfd:" + name)
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	res := runBin(t, "rm", "memfd:"+name)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "no name to remove")
}

func TestParseSysV(t *testing.T) {
	in := []byte(`       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap
     32343      32781   600                  4096 25237 25243      1     0     0     0     0 1795000000 1795000001 1795000000                  4096                     0
         0          5  1777                 65536   100   200      0  1000  1000  1000  1000          0          0 1795000000                     0                     0
-559038737          6   644                  8192     1     1      2     0     0     0     0          0          0          0                     0                     0
garbage
`)
	got := parseSysV(in)
	require.Equal(t, []sysvEntry{
		{Key: 0x7e57, ShmID: 32781, Perms: 0o600, Size: 4096, CPID: 25237, LPID: 25243, Nattch: 1, UID: 0},
		{Key: 0, ShmID: 5, Perms: 0o1777, Size: 65536, CPID: 100, LPID: 200, Nattch: 0, UID: 1000},
		{Key: -559038737, ShmID: 6, Perms: 0o644, Size: 8192, CPID: 1, LPID: 1, Nattch: 2, UID: 0},
	}, got)
	require.Equal(t, "sysv:0xdeadbeef", sysvTarget(&got[2]).Spec)
	require.Equal(t, "shmid:5", sysvTarget(&got[1]).Spec)
}

func TestProcParsers(t *testing.T) {
	maj, min, ok := parseDev("fd:01")
	require.True(t, ok)
	require.Equal(t, uint32(0xfd), maj)
	require.Equal(t, uint32(1), min)
	_, _, ok = parseDev("zz")
	require.False(t, ok)
	name, ok := memfdName("/memfd:ring (deleted)")
	require.True(t, ok)
	require.Equal(t, "ring", name)
	_, ok = memfdName("/dev/shm/x")
	require.False(t, ok)
	pid, fd, ok := procFDRe("/proc/42/fd/7")
	require.True(t, ok)
	require.Equal(t, 42, pid)
	require.Equal(t, 7, fd)
	_, _, ok = procFDRe("/proc/self/fd/7")
	require.False(t, ok)
}

// stat says what an object that is not a shmkit segment holds, at once.
func TestStatSaysNotShmkit(t *testing.T) {
	dir := t.TempDir()
	magic := make([]byte, 8192)
	copy(magic, layout.Magic[:])
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"notes.txt", []byte("hello world, not shared memory\n"), `not a shmkit segment: first bytes are 68 65 6c 6c 6f 20 77 6f 72 6c 64 2c 20 6e 6f 74 ("hello world, not")`},
		{"zeros", make([]byte, 8192), `not a shmkit segment: its first 8192 bytes are all zero`},
		{"empty", nil, `not a shmkit segment: the object is empty (0 bytes)`},
		{"magic", magic, `not a shmkit segment: it begins with the shmkit magic "SHMKIT\x00\x01" but no header follows`},
	} {
		path := filepath.Join(dir, c.name)
		require.NoError(t, os.WriteFile(path, c.b, 0o600))
		start := time.Now()
		res := runBin(t, "stat", path)
		require.Equal(t, 1, res.code)
		require.Contains(t, res.stderr, "shmctl: stat: file:"+path+": "+c.want)
		require.NotContains(t, res.stderr, "too small: ")
		require.Regexp(t, `validation:\s+`+regexp.QuoteMeta(c.want), res.stdout)
		require.Less(t, time.Since(start), 2*time.Second, "no wait for a creator")
	}
}
