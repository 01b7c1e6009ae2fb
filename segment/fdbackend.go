package segment

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// shmDir is where glibc's shm_open puts POSIX shared memory objects.
const shmDir = "/dev/shm/"

// objectPath is the filesystem path of a posix or file spec.
func objectPath(sp Spec) string {
	if sp.Backend == BackendPOSIX {
		return shmDir + sp.Name
	}
	return sp.Path
}

// createPath creates a posix or file object exclusively, sizes it and maps it.
func createPath(sp Spec, size int, o options) (*Segment, error) {
	path := objectPath(sp)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(o.mode))
	if err != nil {
		return nil, pathErr("create", sp, err)
	}
	f := os.NewFile(uintptr(fd), path)
	seg, err := initNewFile(sp, f, size, o)
	if err != nil {
		f.Close()
		// We made it, so it is ours to take back; nobody can have been
		// handed a valid object yet.
		_ = unix.Unlink(path)
		return nil, err
	}
	return seg, nil
}

// initNewFile sets the mode of a freshly created object, sizes it and maps it.
func initNewFile(sp Spec, f *os.File, size int, o options) (*Segment, error) {
	fd := int(f.Fd())
	// fchmod after the exclusive create: open's mode is filtered by the
	// umask, fchmod's is not.
	if err := unix.Fchmod(fd, uint32(o.mode)); err != nil {
		return nil, pathErr("create", sp, fmt.Errorf("fchmod: %w", err))
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		return nil, pathErr("create", sp, fmt.Errorf("ftruncate %d: %w", size, err))
	}
	if err := reserve(sp, fd, size); err != nil {
		return nil, err
	}
	return mapFile(sp, f, size, o, "create")
}

// reserve allocates the backing store of a new object, so that running out
// of space is an error at Create and never a SIGBUS later. ftruncate only
// sets the size: on a full tmpfs (a small /dev/shm, a container's 64 MiB
// default) or a full disk, the first touch of a page that cannot be
// allocated kills the toucher with SIGBUS, and MAP_POPULATE reports nothing.
// It is the one place that reserves memory for every fd-based backend
// (posix, file, memfd); sysv has reserveSysV.
//
// It fallocates in chunks: tmpfs gives up a whole fallocate call with EINTR
// when a signal is pending (a Go process gets SIGCHLD, SIGURG, SIGPROF) and
// frees what that call allocated, so one call over a large size could start
// over forever; chunks keep their progress, and an interrupted chunk is
// retried.
//
// A filesystem without fallocate (EOPNOTSUPP: some FUSE and network
// filesystems, older ones) gets zeros written over the whole size instead,
// which makes it allocate every block too (the write fails with ENOSPC where
// a later page fault would have been SIGBUS). MADV_POPULATE_WRITE would not
// do: populating a shared file mapping need not allocate blocks on a
// filesystem with delayed allocation.
func reserve(sp Spec, fd, size int) error {
	// More than the filesystem has free fails at once, before anything is
	// allocated: filling a tmpfs sized to the whole of RAM chunk by chunk
	// until ENOSPC would first push the machine out of memory.
	// (memfd's internal mount reports no size at all, Blocks 0: no limit
	// to check there.)
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err == nil && fs.Bsize > 0 && fs.Blocks > 0 {
		if free := fs.Bavail * uint64(fs.Bsize); uint64(size) > free {
			return reserveErr(sp, size, fmt.Sprintf("%d bytes free", free), unix.ENOSPC)
		}
	}
	const chunk = 16 << 20
	for off := 0; off < size; {
		n := min(chunk, size-off)
		err := unix.Fallocate(fd, 0, int64(off), int64(n))
		switch {
		case err == nil:
			off += n
		case errors.Is(err, unix.EINTR):
			// Retry this chunk; the ones before it stay allocated.
		case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS):
			return reserveByWriting(sp, fd, off, size)
		default:
			return reserveErr(sp, size, "fallocate", err)
		}
	}
	return nil
}

// reserveByWriting writes zeros over [off, size) of fd (already zero, since
// the object was just created and sized) so that the filesystem allocates
// them.
func reserveByWriting(sp Spec, fd, off, size int) error {
	zeros := make([]byte, 64<<10)
	for off < size {
		n, err := unix.Pwrite(fd, zeros[:min(len(zeros), size-off)], int64(off))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return reserveErr(sp, size, "writing zeros (no fallocate here)", err)
		}
		if n == 0 {
			return reserveErr(sp, size, "writing zeros (no fallocate here)", unix.EIO)
		}
		off += n
	}
	return nil
}

// reserveErr says why size bytes could not be reserved, keeping the errno
// for errors.Is.
func reserveErr(sp Spec, size int, how string, err error) error {
	why := ""
	switch {
	case errors.Is(err, unix.ENOSPC):
		why = "the filesystem is out of space"
	case errors.Is(err, unix.EFBIG):
		why = "the size is larger than the filesystem allows"
	case errors.Is(err, unix.ENOMEM):
		why = "out of memory"
	case errors.Is(err, unix.EDQUOT):
		why = "the disk quota is exhausted"
	default:
		why = "the memory could not be reserved"
	}
	return pathErr("create", sp, fmt.Errorf("reserving %d bytes: %s (%s: %w)", size, why, how, err))
}

// mapFile maps size bytes of f and wraps the result in a Segment that owns f.
func mapFile(sp Spec, f *os.File, size int, o options, op string) (*Segment, error) {
	prot, flags := mapFlags(o)
	data, err := unix.Mmap(int(f.Fd()), 0, size, prot, flags)
	if err != nil {
		return nil, pathErr(op, sp, fmt.Errorf("mmap %d bytes: %w", size, err))
	}
	return &Segment{spec: sp, readOnly: o.readOnly, cannotFault: cannotFault(int(f.Fd()), size), data: data, file: f}, nil
}

// admit returns the size of the regular file behind f once it has checked
// that f may be mapped: a regular file (not a FIFO or a device), owned by a
// trusted user (see trust.go), when sealed is set carrying the seals that
// keep anyone from shrinking it, and not empty. It is what keeps Open from
// mapping past the end of an object, or an object someone else planted.
func admit(sp Spec, f *os.File, o options, op string, sealed bool) (int, error) {
	fd := int(f.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, pathErr(op, sp, fmt.Errorf("fstat: %w", err))
	}
	if testHookAdmitStat != nil {
		testHookAdmitStat(fd)
	}
	if err := admitStat(sp, fd, &st, o, op, sealed); err != nil {
		return 0, err
	}
	if sealed {
		// The seals were read after st: a peer could have shrunk the
		// object and sealed it in between. Sealed now, it cannot be
		// smaller than a size read from here on (and where WithUnsealed
		// let it through unsealed, the fresher size is no worse).
		if err := unix.Fstat(fd, &st); err != nil {
			return 0, pathErr(op, sp, fmt.Errorf("fstat: %w", err))
		}
	}
	if st.Size == 0 {
		return 0, pathErr(op, sp, &EmptyError{Origin: statOrigin(&st)})
	}
	if st.Size < 0 || uint64(st.Size) > uint64(maxInt) {
		return 0, pathErr(op, sp, fmt.Errorf("size %d does not fit in an int: %w", st.Size, fs.ErrInvalid))
	}
	return int(st.Size), nil
}

// admitStat is admit's checks on a descriptor already fstat'ed, but the size.
func admitStat(sp Spec, fd int, st *unix.Stat_t, o options, op string, sealed bool) error {
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return pathErr(op, sp, fmt.Errorf("not a regular file (mode %#o): %w", st.Mode, fs.ErrInvalid))
	}
	if err := checkOwner(sp, o, op, st); err != nil {
		return err
	}
	if sealed {
		return checkSeals(sp, o, op, fd)
	}
	return nil
}

const maxInt = int(^uint(0) >> 1)

// testHookAdmitStat, set by tests only, runs in admit between the size's
// fstat and the seal check: where a peer's shrink-then-seal would land.
var testHookAdmitStat func(fd int)

// openFile admits f (see admit) and maps all of it. On error f is closed.
func openFile(sp Spec, f *os.File, o options, op string, sealed bool) (*Segment, error) {
	size, err := admit(sp, f, o, op, sealed)
	if err != nil {
		f.Close()
		return nil, err
	}
	seg, err := mapFile(sp, f, size, o, op)
	if err != nil {
		f.Close()
		return nil, err
	}
	return seg, nil
}

func openPath(sp Spec, o options) (*Segment, error) {
	path := objectPath(sp)
	flags := unix.O_RDWR
	if o.readOnly {
		flags = unix.O_RDONLY
	}
	// O_NOFOLLOW: a symlink planted at the name is refused (ELOOP), not
	// followed to whatever it points at. O_NONBLOCK: a FIFO planted there
	// must not block the open (it is then refused as not a regular file);
	// it changes nothing for a regular file.
	fd, err := unix.Open(path, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, deniedErr("open", sp, o, "", err)
	}
	// A named object cannot be sealed (only a memfd can); what protects the
	// opener is the owner check. See the package documentation.
	return openFile(sp, os.NewFile(uintptr(fd), path), o, "open", false)
}

func createMemfd(sp Spec, size int, o options) (*Segment, error) {
	fd, err := unix.MemfdCreate(sp.Name, unix.MFD_ALLOW_SEALING|unix.MFD_CLOEXEC)
	if err != nil {
		return nil, pathErr("create", sp, fmt.Errorf("memfd_create: %w", err))
	}
	f := os.NewFile(uintptr(fd), "/memfd:"+sp.Name)
	// The memfd's mode (0777 from the kernel) matters to anyone who reaches
	// it through /proc/PID/fd; give it the requested mode like the others.
	if err := unix.Fchmod(fd, uint32(o.mode)); err != nil {
		f.Close()
		return nil, pathErr("create", sp, fmt.Errorf("fchmod: %w", err))
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		f.Close()
		return nil, pathErr("create", sp, fmt.Errorf("ftruncate %d: %w", size, err))
	}
	if err := reserve(sp, fd, size); err != nil {
		f.Close()
		return nil, err
	}
	// Once sized, nobody may change the size (a shrink would make every
	// mapper take SIGBUS) or lift the seals.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, memfdSeals); err != nil {
		f.Close()
		return nil, pathErr("create", sp, fmt.Errorf("seal: %w", err))
	}
	seg, err := mapFile(sp, f, size, o, "create")
	if err != nil {
		f.Close()
		return nil, err
	}
	return seg, nil
}

// memfdSeals are the seals every memfd segment carries.
const memfdSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL

// openMemfd finds a memfd named sp.Name among this process's descriptors.
func openMemfd(sp Spec, o options) (*Segment, error) {
	fd, err := findMemfd(sp.Name)
	if err != nil {
		return nil, pathErr("open", sp, err)
	}
	return openDup(sp, fd, o)
}

// findMemfd returns a descriptor of this process that refers to a memfd
// named name. Several descriptors of the same memfd are fine; descriptors of
// different memfds with the same name are ambiguous.
func findMemfd(name string) (int, error) {
	const dir = "/proc/self/fd"
	d, err := os.Open(dir)
	if err != nil {
		return -1, fmt.Errorf("memfd lookup needs %s: %w", dir, err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return -1, fmt.Errorf("memfd lookup: read %s: %w", dir, err)
	}
	want := "/memfd:" + name + " (deleted)"
	found, foundIno := -1, uint64(0)
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		link, err := os.Readlink(dir + "/" + n)
		if err != nil || link != want {
			continue // includes the directory's own fd, already closed
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil {
			continue
		}
		if found >= 0 && st.Ino != foundIno {
			return -1, fmt.Errorf("descriptors %d and %d are different memfds both named %q; open one by fd:N", found, fd, name)
		}
		if found < 0 || fd < found {
			found, foundIno = fd, st.Ino
		}
	}
	if found < 0 {
		return -1, fmt.Errorf("no descriptor of this process is a memfd named %q "+
			"(a memfd has no namespace: pass it by descriptor, through exec.Cmd.ExtraFiles or Send/Receive): %w",
			name, fs.ErrNotExist)
	}
	return found, nil
}

func openFD(sp Spec, o options) (*Segment, error) {
	return openDup(sp, sp.FD, o)
}

// openDup maps the object behind fd through a duplicate of it, so the
// caller keeps fd and the Segment owns (and closes) only its duplicate.
//
// For a read-only open the "duplicate" is a new O_RDONLY open of the same
// object through /proc/self/fd, so that File() cannot be used (or passed
// on) to write either. Where that is refused (no /proc, or the object's mode
// does not let us open it although we were handed a descriptor) it falls
// back to a plain duplicate; the mapping is PROT_READ either way.
func openDup(sp Spec, fd int, o options) (*Segment, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		if errors.Is(err, unix.EBADF) {
			err = fmt.Errorf("descriptor %d is not open: %w", fd, fs.ErrNotExist)
		}
		return nil, pathErr("open", sp, err)
	}
	// Checked before anything else: reopening a FIFO or a device below
	// could block or have side effects, and an untrusted or unsealed object
	// is refused before we make any reference of our own to it.
	if err := admitStat(sp, fd, &st, o, "open", true); err != nil {
		return nil, err
	}
	if o.readOnly {
		rfd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			return openFile(sp, os.NewFile(uintptr(rfd), fdName(sp, fd)), o, "open", true)
		}
	}
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, pathErr("open", sp, err)
	}
	f := os.NewFile(uintptr(nfd), fdName(sp, fd))
	if !o.readOnly {
		// A descriptor opened O_RDONLY cannot back a writable shared mapping;
		// say so instead of letting mmap report a bare EACCES.
		fl, err := unix.FcntlInt(uintptr(nfd), unix.F_GETFL, 0)
		if err == nil && fl&unix.O_ACCMODE == unix.O_RDONLY {
			f.Close()
			return nil, pathErr("open", sp, fmt.Errorf("descriptor %d is read-only; open with ReadOnly(): %w", fd, fs.ErrPermission))
		}
	}
	return openFile(sp, f, o, "open", true)
}

func fdName(sp Spec, fd int) string {
	if sp.Backend == BackendMemfd {
		return "/memfd:" + sp.Name
	}
	return "fd:" + strconv.Itoa(fd)
}
