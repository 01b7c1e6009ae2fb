package segment_test

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/shmkit/shmkit/internal/shmerr"
	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/segment"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

const (
	attackerUID = testproc.AttackerUID
	victimUID   = testproc.VictimUID
)

func needRoot(t *testing.T, why string) { t.Helper(); testproc.NeedRoot(t, why) }

// asUser runs child c with args as uid (group gid) from exe and returns its
// output; the child must succeed.
func asUser(t *testing.T, exe string, uid, gid uint32, c testproc.Child, args ...string) string {
	t.Helper()
	return c.RunAsUser(t, exe, uid, gid, args...)
}

// plantChild creates spec mode 0666 and writes a secret into it, as the
// attacker would. args: spec [giveto-uid]; with giveto (sysv only) it then
// hands the segment's ownership to that uid with IPC_SET, which an owner
// may do.
var plantChild = testproc.Register("trust-plant", func(args []string) error {
	s, err := segment.Create(args[0], 8192, segment.WithMode(0o666))
	if err != nil {
		return err
	}
	defer s.Close()
	copy(s.Bytes(), "planted")
	if len(args) > 1 {
		uid, _ := strconv.Atoi(args[1])
		key, err := s.Spec().SysVKey()
		if err != nil {
			return err
		}
		id, err := unix.SysvShmGet(int(key), 0, 0)
		if err != nil {
			return err
		}
		var d unix.SysvShmDesc
		if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &d); err != nil {
			return err
		}
		d.Perm.Uid = uint32(uid)
		if _, err := unix.SysvShmCtl(id, unix.IPC_SET, &d); err != nil {
			return fmt.Errorf("IPC_SET uid %d: %w", uid, err)
		}
	}
	return nil
})

// openChild opens a spec and reports how it went. args: spec owner group,
// where owner and group are uids/gids to trust, or -1. It prints
// "result=ok" or "result=refused untrusted=BOOL perm=BOOL" and the error.
var openChild = testproc.Register("trust-open", func(args []string) error {
	var opts []segment.Option
	if u, _ := strconv.Atoi(args[1]); u >= 0 {
		opts = append(opts, segment.WithTrustOwner(u))
	}
	if g, _ := strconv.Atoi(args[2]); g >= 0 {
		opts = append(opts, segment.WithTrustGroup(g))
	}
	s, err := segment.Open(args[0], opts...)
	if err != nil {
		fmt.Printf("result=refused untrusted=%v perm=%v\nerr=%v\n",
			errors.Is(err, shmerr.ErrUntrusted), errors.Is(err, fs.ErrPermission), err)
		return nil
	}
	defer s.Close()
	if string(s.Bytes()[:7]) != "planted" && string(s.Bytes()[:3]) != "own" {
		return fmt.Errorf("unexpected contents %q", s.Bytes()[:7])
	}
	fmt.Println("result=ok")
	return nil
})

// ownChild creates spec mode 0666 as its own uid and opens it again: a
// permissive object of one's own is one's choice.
var ownChild = testproc.Register("trust-own", func(args []string) error {
	s, err := segment.Create(args[0], 4096, segment.WithMode(0o666))
	if err != nil {
		return err
	}
	defer s.Close()
	copy(s.Bytes(), "own")
	o, err := segment.Open(args[0])
	if err != nil {
		return err
	}
	fmt.Println("result=ok")
	return o.Close()
})

func TestSquattedObjectRefused(t *testing.T) {
	needRoot(t, "run processes as other uids (exec Credential)")
	exe := testproc.ExeForOthers(t)
	// A world-writable sticky directory, like /tmp, for the file backend.
	shared, err := os.MkdirTemp("", "shmkit-shared-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(shared) })
	require.NoError(t, os.Chmod(shared, 0o1777))

	for name, spec := range map[string]string{
		"posix": posixSpec(),
		"file":  "file:" + filepath.Join(shared, "seg"),
		"sysv":  sysvSpec(),
	} {
		t.Run(name, func(t *testing.T) {
			t.Cleanup(func() { removeQuietly(t, spec) })
			asUser(t, exe, attackerUID, attackerUID, plantChild, spec)

			// Root (this process) refuses it: euid 0 is not its owner.
			_, err := segment.Open(spec)
			require.ErrorIs(t, err, shmerr.ErrUntrusted)
			require.ErrorIs(t, err, fs.ErrPermission)
			sp, _ := segment.ParseSpec(spec)
			for _, want := range []string{sp.String(), "owned by uid 12345", "mode 0666", "WithTrustOwner(12345)", "WithTrustGroup(12345)"} {
				require.ErrorContains(t, err, want)
			}
			s, err := segment.Open(spec, segment.WithTrustOwner(attackerUID))
			require.NoError(t, err)
			require.Equal(t, "planted", string(s.Bytes()[:7]))
			require.NoError(t, s.Close())

			// So does an unprivileged victim, unless it names the owner or
			// the group.
			open := func(owner, group int) string {
				return asUser(t, exe, victimUID, victimUID, openChild, spec, strconv.Itoa(owner), strconv.Itoa(group))
			}
			out := open(-1, -1)
			require.Contains(t, out, "result=refused untrusted=true perm=true", out)
			require.Contains(t, out, "owned by uid 12345")
			require.Contains(t, out, "neither this process's euid 23456 nor root")
			require.Contains(t, open(attackerUID, -1), "result=ok")
			require.Contains(t, open(-1, attackerUID), "result=ok")
			require.Contains(t, open(attackerUID+1, attackerUID+1), "result=refused untrusted=true")
		})
	}
}

func TestOwnPermissiveObjectAllowed(t *testing.T) {
	needRoot(t, "run processes as other uids (exec Credential)")
	exe := testproc.ExeForOthers(t)
	for name, spec := range map[string]string{"posix": posixSpec(), "sysv": sysvSpec()} {
		t.Run(name, func(t *testing.T) {
			t.Cleanup(func() { removeQuietly(t, spec) })
			require.Contains(t, asUser(t, exe, victimUID, victimUID, ownChild, spec), "result=ok")
		})
	}
}

// An owner may give a SysV segment away (IPC_SET uid); its creator stays.
func TestSysVGivenAwayRefused(t *testing.T) {
	needRoot(t, "run processes as other uids (exec Credential)")
	exe := testproc.ExeForOthers(t)
	spec := sysvSpec()
	t.Cleanup(func() { removeQuietly(t, spec) })
	asUser(t, exe, attackerUID, attackerUID, plantChild, spec, strconv.Itoa(victimUID))
	out := asUser(t, exe, victimUID, victimUID, openChild, spec, "-1", "-1")
	require.Contains(t, out, "result=refused untrusted=true", out)
	require.Contains(t, out, "created by uid 12345")
	require.Contains(t, asUser(t, exe, victimUID, victimUID, openChild, spec, strconv.Itoa(attackerUID), "-1"), "result=ok")
}

// sendOwnChild creates a sealed memfd as its own uid and sends it twice on
// the socket at fd 3.
var sendOwnChild = testproc.Register("trust-send-own", func(args []string) error {
	c, err := net.FileConn(os.NewFile(3, "sock"))
	if err != nil {
		return err
	}
	s, err := segment.Create("memfd:theirs", 4096, segment.WithMode(0o666))
	if err != nil {
		return err
	}
	defer s.Close()
	copy(s.Bytes(), "planted")
	for range 2 {
		if err := segment.Send(c.(*net.UnixConn), s); err != nil {
			return err
		}
	}
	return nil
})

// A descriptor is owned too: a memfd made by another user is refused.
func TestReceivedForeignOwnerRefused(t *testing.T) {
	needRoot(t, "run processes as other uids (exec Credential)")
	exe := testproc.ExeForOthers(t)
	conn, theirs := socketpair(t)
	cmd := sendOwnChild.AsUser(t, exe, attackerUID, attackerUID)
	cmd.ExtraFiles = []*os.File{theirs}
	p := testproc.StartCmd(t, cmd)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(time.Minute)))
	_, err := segment.Receive(conn)
	require.ErrorIs(t, err, shmerr.ErrUntrusted)
	require.ErrorContains(t, err, "owned by uid 12345")
	s, err := segment.Receive(conn, segment.WithTrustOwner(attackerUID))
	require.NoError(t, err)
	require.Equal(t, "planted", string(s.Bytes()[:7]))
	require.NoError(t, s.Close())
	require.NoError(t, p.Wait(time.Minute), p.Output())
}

// evilSender makes an unsealed memfd, sends it on the socket at fd 3, waits
// for a byte, shrinks the memfd to 0, and answers with a byte. args: how,
// "unsealed" (memfd_create without seals) or "sealed" (segment.Create).
var evilSender = testproc.Register("trust-evil-sender", func(args []string) error {
	c, err := net.FileConn(os.NewFile(3, "sock"))
	if err != nil {
		return err
	}
	conn := c.(*net.UnixConn)
	var s *segment.Segment
	var fd int
	if args[0] == "sealed" {
		s, err = segment.Create("memfd:evil", 2*4096)
		if err != nil {
			return err
		}
		fd = int(s.File().Fd())
	} else {
		fd, err = unix.MemfdCreate("evil", unix.MFD_CLOEXEC)
		if err != nil {
			return err
		}
		if err := unix.Ftruncate(fd, 2*4096); err != nil {
			return err
		}
		// The sender's own Segment must accept the risk to exist at all.
		s, err = segment.Open("memfd:evil", segment.WithUnsealed())
		if err != nil {
			return err
		}
	}
	defer s.Close()
	if err := segment.Send(conn, s); err != nil {
		return err
	}
	var b [1]byte
	if _, err := conn.Read(b[:]); err != nil {
		return nil // the receiver refused and hung up: nothing to do
	}
	terr := unix.Ftruncate(fd, 0)
	fmt.Printf("truncate=%v\n", terr)
	_, err = conn.Write(b[:])
	return err
})

// victimReceiver receives a segment on the socket at fd 3, touches it, asks
// the sender to go ahead, and touches it again past the first page. args:
// "default" or "unsealed" (Receive WithUnsealed).
var victimReceiver = testproc.Register("trust-victim", func(args []string) error {
	c, err := net.FileConn(os.NewFile(3, "sock"))
	if err != nil {
		return err
	}
	conn := c.(*net.UnixConn)
	var opts []segment.Option
	if args[0] == "unsealed" {
		opts = append(opts, segment.WithUnsealed())
	}
	s, err := segment.Receive(conn, opts...)
	if err != nil {
		fmt.Printf("result=refused untrusted=%v\nerr=%v\n", errors.Is(err, shmerr.ErrUntrusted), err)
		return nil
	}
	defer s.Close()
	b := s.Bytes()
	b[4096] = 1
	var x [1]byte
	if _, err := conn.Write(x[:]); err != nil {
		return err
	}
	if _, err := conn.Read(x[:]); err != nil {
		return err
	}
	b[4096] = 2 // SIGBUS if the sender could shrink it
	fmt.Println("result=survived")
	return nil
})

// The reproduction of "unsealed memfd accepted": a sender passes a memfd
// without seals, the receiver maps it, the sender truncates it, and the
// receiver's next touch is SIGBUS. Receive must refuse such a descriptor.
func TestReceiveUnsealedMemfd(t *testing.T) {
	run := func(t *testing.T, senderHow, victimHow string) (sender, victim *testproc.Proc) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		a, b := os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")
		t.Cleanup(func() { a.Close(); b.Close() })
		cs := evilSender.Command(t, senderHow)
		cs.ExtraFiles = []*os.File{a}
		cv := victimReceiver.Command(t, victimHow)
		cv.ExtraFiles = []*os.File{b}
		sender, victim = testproc.StartCmd(t, cs), testproc.StartCmd(t, cv)
		a.Close()
		b.Close()
		return sender, victim
	}
	t.Run("refused", func(t *testing.T) {
		sender, victim := run(t, "unsealed", "default")
		require.NoError(t, victim.Wait(time.Minute), victim.Output())
		require.NoError(t, sender.Wait(time.Minute), sender.Output())
		out := victim.Output()
		require.Contains(t, out, "result=refused untrusted=true", out)
		require.Contains(t, out, "missing F_SEAL_SHRINK|F_SEAL_GROW")
		require.Contains(t, out, "WithUnsealed")
	})
	t.Run("opt-out-is-vulnerable", func(t *testing.T) {
		// What WithUnsealed documents: the receiver dies of SIGBUS.
		sender, victim := run(t, "unsealed", "unsealed")
		err := victim.Wait(time.Minute)
		require.NoError(t, sender.Wait(time.Minute), sender.Output())
		require.Error(t, err, victim.Output())
		require.Contains(t, victim.Output(), "SIGBUS")
	})
	t.Run("sealed-survives", func(t *testing.T) {
		sender, victim := run(t, "sealed", "default")
		require.NoError(t, victim.Wait(time.Minute), victim.Output())
		require.NoError(t, sender.Wait(time.Minute), sender.Output())
		require.Contains(t, victim.Output(), "result=survived")
		require.Contains(t, sender.Output(), "truncate=operation not permitted")
	})
}

// An inherited descriptor ("fd:3") of an unsealed memfd is refused too.
func TestInheritedUnsealedMemfd(t *testing.T) {
	fd, err := unix.MemfdCreate("unsealed", unix.MFD_CLOEXEC)
	require.NoError(t, err)
	f := os.NewFile(uintptr(fd), "unsealed")
	t.Cleanup(func() { f.Close() })
	require.NoError(t, unix.Ftruncate(fd, 4096))
	for _, target := range []string{"fd:3", "memfd:unsealed"} {
		cmd := attachChild.Command(t, "open", target, "4096", "0", "0")
		cmd.ExtraFiles = []*os.File{f}
		p := testproc.StartCmd(t, cmd)
		require.Error(t, p.Wait(time.Minute))
		require.Contains(t, p.Output(), "untrusted segment", target)
		require.Contains(t, p.Output(), "not sealed (has F_SEAL_SEAL, missing F_SEAL_SHRINK|F_SEAL_GROW)")
	}
	// And in this process, with the opt-out.
	_, err = segment.Open("fd:" + strconv.Itoa(fd))
	require.ErrorIs(t, err, shmerr.ErrUntrusted)
	s, err := segment.Open("fd:"+strconv.Itoa(fd), segment.WithUnsealed())
	require.NoError(t, err)
	require.NoError(t, s.Close())
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts it
// at cleanup.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	needRoot(t, "mount a small tmpfs")
	dir := filepath.Join(t.TempDir(), "mnt")
	require.NoError(t, os.Mkdir(dir, 0o700))
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+strconv.Itoa(size)); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): no CAP_SYS_ADMIN here", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
			_ = unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	return dir
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// On a full filesystem Create must fail with ENOSPC, not succeed and leave
// the first touch past the free space to kill the process with SIGBUS.
func TestCreateOutOfSpaceFile(t *testing.T) {
	dir := mountTmpfs(t, 1<<20)
	spec := "file:" + filepath.Join(dir, "big")
	s, err := segment.Create(spec, 4<<20)
	if err == nil {
		s.Close()
		t.Fatalf("Create of 4 MiB on a 1 MiB tmpfs succeeded: touching past 1 MiB would be SIGBUS")
	}
	require.ErrorIs(t, err, syscall.ENOSPC)
	for _, want := range []string{spec, "4194304", "out of space"} {
		require.ErrorContains(t, err, want)
	}
	require.Empty(t, entries(t, dir), "a failed Create leaves nothing")

	// What fits is reserved: a second object cannot take the same space.
	small := "file:" + filepath.Join(dir, "small")
	s, err = segment.Create(small, 768<<10)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	fill(s.Bytes(), 3)
	_, err = segment.Create("file:"+filepath.Join(dir, "second"), 512<<10)
	require.ErrorIs(t, err, syscall.ENOSPC)
	require.Equal(t, []string{"small"}, entries(t, dir))
	require.NoError(t, checkFill(s.Bytes(), 3))
	require.NoError(t, s.Close())
	require.NoError(t, segment.Remove(small))
}

// smallShmChild runs in its own mount namespace with a 1 MiB tmpfs over
// /dev/shm, creates a 4 MiB posix segment there, and reports what
// happened. If Create succeeds it touches every byte (SIGBUS before the
// fix).
var smallShmChild = testproc.Register("trust-small-shm", func(args []string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Mount("tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m"); err != nil {
		return fmt.Errorf("mount tmpfs on /dev/shm: %w", err)
	}
	s, err := segment.Create("posix:/big", 4<<20)
	if err == nil {
		fill(s.Bytes(), 1)
		fmt.Println("result=created")
		return s.Close()
	}
	ents, _ := os.ReadDir("/dev/shm")
	fmt.Printf("result=error enospc=%v leftover=%d\nerr=%v\n", errors.Is(err, syscall.ENOSPC), len(ents), err)
	return nil
})

func TestCreateOutOfSpacePosix(t *testing.T) {
	needRoot(t, "mount a tmpfs over /dev/shm in a private mount namespace")
	cmd := smallShmChild.Command(t)
	cmd.SysProcAttr.Unshareflags = syscall.CLONE_NEWNS
	p := testproc.StartCmd(t, cmd)
	err := p.Wait(time.Minute)
	out := p.Output()
	if err != nil && strings.Contains(out, "mount") && !strings.Contains(out, "SIGBUS") {
		t.Skipf("cannot mount a tmpfs over /dev/shm here: %s", out)
	}
	require.NoError(t, err, "the child died: %s", out)
	require.Contains(t, out, "result=error enospc=true leftover=0", out)
	require.Contains(t, out, "posix:/big")
	require.Contains(t, out, "out of space")
}

// Create allocates every page: a fresh fd-based object has all its blocks
// (st_blocks), a fresh sysv segment all its pages resident (mincore).
func TestCreateReserves(t *testing.T) {
	const size = 64 * 4096
	for name, spec := range map[string]string{
		"posix": posixSpec(),
		"memfd": "memfd:" + testproc.UniqueName("memfd"),
		"file":  "file:" + filepath.Join(t.TempDir(), "seg"),
		"sysv":  sysvSpec(),
	} {
		t.Run(name, func(t *testing.T) {
			s := create(t, spec, size)
			if f := s.File(); f != nil {
				var st unix.Stat_t
				require.NoError(t, unix.Fstat(int(f.Fd()), &st))
				require.GreaterOrEqual(t, st.Blocks*512, int64(size), "blocks not allocated at Create")
				return
			}
			b := s.Bytes()
			vec := make([]byte, size/4096)
			_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0])))
			require.Zero(t, errno, "mincore")
			for i, v := range vec {
				require.Equal(t, byte(1), v&1, "page %d not allocated at Create", i)
			}
		})
	}
}

func BenchmarkCreate64MiB(b *testing.B) {
	for _, backend := range []string{"posix", "memfd", "sysv"} {
		b.Run(backend, func(b *testing.B) {
			for b.Loop() {
				spec := "memfd:bench"
				switch backend {
				case "posix":
					spec = posixSpec()
				case "sysv":
					spec = sysvSpec()
				}
				s, err := segment.Create(spec, 64<<20)
				if err != nil {
					b.Fatal(err)
				}
				s.Close()
				if backend != "memfd" {
					if err := segment.Remove(spec); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// More than /dev/shm has free fails at once with ENOSPC, allocating
// nothing: filling a tmpfs as large as RAM chunk by chunk until ENOSPC would
// first push the machine out of memory (a 1<<40-item ring did, before).
func TestCreateLargerThanFreeFailsAtOnce(t *testing.T) {
	var fsBefore unix.Statfs_t
	require.NoError(t, unix.Statfs("/dev/shm", &fsBefore))
	if fsBefore.Blocks == 0 {
		t.Skip("/dev/shm reports no size: nothing to exceed")
	}
	free := fsBefore.Bavail * uint64(fsBefore.Bsize)
	spec := posixSpec()
	t.Cleanup(func() { _ = segment.Remove(spec) })
	start := time.Now()
	_, err := segment.Create(spec, int(free+1<<30))
	require.ErrorIs(t, err, syscall.ENOSPC)
	require.ErrorContains(t, err, "out of space")
	require.Less(t, time.Since(start), 5*time.Second, "it must not allocate first")
	_, err = os.Stat("/dev/shm/" + strings.TrimPrefix(spec, "posix:/"))
	require.ErrorIs(t, err, fs.ErrNotExist, "the half-made object is removed")
}
