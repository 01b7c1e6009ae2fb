package main

import (
	"bufio"
	"bytes"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// fileID names an OS memory object independently of its name: the device
// and inode the kernel prints in /proc/PID/maps and fstat returns. Paths are
// ambiguous (an unlinked /dev/shm object shows as "NAME (deleted)", two
// memfds may share a name); (dev, inode) is not.
type fileID struct {
	Dev uint64 // unix.Mkdev(major, minor)
	Ino uint64
}

// fileIDOf returns the identity of st.
func fileIDOf(st *unix.Stat_t) fileID { return fileID{Dev: st.Dev, Ino: st.Ino} }

// memfdRef is one descriptor, in some process, of a memfd.
type memfdRef struct {
	PID  int32
	FD   int
	Name string // without the "memfd:" prefix
	ID   fileID
	Size int64
}

// procScan is one pass over /proc: who maps or holds what. It is a snapshot;
// processes come and go while it is taken, and /proc entries of other users
// are unreadable without privilege (those processes are simply not seen,
// and Unreadable counts them).
type procScan struct {
	self int32
	// users maps an object to the pids that map it or hold a descriptor of it.
	users map[fileID][]int32
	// byPath maps the path and inode printed in maps lines to the pids
	// mapping them. It backs up users on filesystems whose stat device
	// differs from the device maps prints (btrfs subvolumes).
	byPath map[pathIno][]int32
	// sysvUsers maps a SysV shmid to the pids that have it attached.
	sysvUsers map[int][]int32
	// memfds lists every memfd descriptor found, in pid, fd order.
	memfds []memfdRef
	// Unreadable counts processes whose maps or fds could not be read.
	Unreadable int
}

type pathIno struct {
	path string
	ino  uint64
}

// scanProc walks /proc once. The scanning process itself is left out: it
// opens objects only to inspect them.
func scanProc() *procScan {
	ps := &procScan{
		self:      int32(os.Getpid()),
		users:     map[fileID][]int32{},
		byPath:    map[pathIno][]int32{},
		sysvUsers: map[int][]int32{},
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return ps
	}
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n <= 0 || int32(n) == ps.self {
			continue
		}
		pid := int32(n)
		okMaps := ps.scanMaps(pid)
		okFDs := ps.scanFDs(pid)
		if !okMaps || !okFDs {
			ps.Unreadable++
		}
	}
	return ps
}

func addPID(list []int32, pid int32) []int32 {
	if slices.Contains(list, pid) {
		return list
	}
	return append(list, pid)
}

// scanMaps records what pid maps. Lines look like
//
//	7f2c1a000000-7f2c1a001000 rw-s 00000000 00:1a 1234   /dev/shm/jobs
//	7f2c1a000000-7f2c1a001000 r--s 00000000 00:01 98307  /SYSV00005eed (deleted)
//
// For SysV mappings the inode column is the shmid.
func (ps *procScan) scanMaps(pid int32) bool {
	f, err := os.Open("/proc/" + strconv.Itoa(int(pid)) + "/maps")
	if err != nil {
		return os.IsNotExist(err) // exited meanwhile: nothing to see, not a failure
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	seenFile := map[fileID]bool{}
	for sc.Scan() {
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 6 {
			continue // anonymous mapping
		}
		ino, err := strconv.ParseUint(string(fields[4]), 10, 64)
		if err != nil || ino == 0 {
			continue
		}
		path := string(fields[5])
		if strings.HasPrefix(path, "/SYSV") {
			id := int(ino)
			ps.sysvUsers[id] = addPID(ps.sysvUsers[id], pid)
			continue
		}
		maj, min, ok := parseDev(string(fields[3]))
		if !ok {
			continue
		}
		id := fileID{Dev: unix.Mkdev(maj, min), Ino: ino}
		if !seenFile[id] {
			seenFile[id] = true
			ps.users[id] = addPID(ps.users[id], pid)
			if len(fields) == 6 { // a path with spaces or " (deleted)" is not matched by path
				k := pathIno{path, ino}
				ps.byPath[k] = addPID(ps.byPath[k], pid)
			}
		}
	}
	return sc.Err() == nil
}

// parseDev parses the "major:minor" hex pair of a maps line.
func parseDev(s string) (uint32, uint32, bool) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, false
	}
	maj, err1 := strconv.ParseUint(a, 16, 32)
	min, err2 := strconv.ParseUint(b, 16, 32)
	return uint32(maj), uint32(min), err1 == nil && err2 == nil
}

// scanFDs records which shared-memory objects pid holds descriptors of:
// /dev/shm objects and memfds.
func (ps *procScan) scanFDs(pid int32) bool {
	dir := "/proc/" + strconv.Itoa(int(pid)) + "/fd"
	d, err := os.Open(dir)
	if err != nil {
		return os.IsNotExist(err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return false
	}
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		link, err := os.Readlink(dir + "/" + n)
		if err != nil || !strings.HasPrefix(link, "/dev/shm/") && !strings.HasPrefix(link, "/memfd:") {
			// Sockets, pipes, ordinary files: only their mappings matter
			// (a segment file in use is mapped), and stat'ing every
			// descriptor on the host would dominate the scan.
			continue
		}
		var st unix.Stat_t
		if unix.Stat(dir+"/"+n, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		id := fileIDOf(&st)
		ps.users[id] = addPID(ps.users[id], pid)
		if name, ok := memfdName(link); ok {
			ps.memfds = append(ps.memfds, memfdRef{PID: pid, FD: fd, Name: name, ID: id, Size: st.Size})
		}
	}
	return true
}

// memfdName extracts NAME from a descriptor link "/memfd:NAME (deleted)".
func memfdName(link string) (string, bool) {
	rest, ok := strings.CutPrefix(link, "/memfd:")
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, " (deleted)")
	return name, ok
}

// usersOf returns the live pids (other than this one) that map or hold the
// object with identity id, found at path (if it has one), sorted.
func (ps *procScan) usersOf(id fileID, path string) []int32 {
	out := slices.Clone(ps.users[id])
	if path != "" {
		for _, pid := range ps.byPath[pathIno{path, id.Ino}] {
			out = addPID(out, pid)
		}
	}
	slices.Sort(out)
	return out
}

// sysvAttached returns the pids that have shmid attached, sorted.
func (ps *procScan) sysvAttached(shmid int) []int32 {
	out := slices.Clone(ps.sysvUsers[shmid])
	slices.Sort(out)
	return out
}

// sysvEntry is one line of /proc/sysvipc/shm.
type sysvEntry struct {
	Key    int32
	ShmID  int
	Perms  uint32
	Size   uint64
	CPID   int32
	LPID   int32
	Nattch uint64
	UID    uint32
}

// shmDest is SHM_DEST in a SysV segment's mode: IPC_RMID was called while
// processes had it attached. Linux also resets such a segment's key to
// IPC_PRIVATE (0).
const shmDest = 0o1000

// Removed reports whether the segment is marked for deletion.
func (e *sysvEntry) Removed() bool { return e.Perms&shmDest != 0 }

// readSysV parses /proc/sysvipc/shm:
//
//	key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime rss swap
//
// key is printed as a signed decimal and perms in octal.
func readSysV() ([]sysvEntry, error) {
	b, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		return nil, err
	}
	return parseSysV(b), nil
}

func parseSysV(b []byte) []sysvEntry {
	var out []sysvEntry
	lines := bytes.Split(b, []byte("\n"))
	for i, line := range lines {
		f := strings.Fields(string(line))
		if i == 0 || len(f) < 8 {
			continue // header or blank
		}
		key, err1 := strconv.ParseInt(f[0], 10, 64)
		id, err2 := strconv.Atoi(f[1])
		perms, err3 := strconv.ParseUint(f[2], 8, 32)
		size, err4 := strconv.ParseUint(f[3], 10, 64)
		cpid, err5 := strconv.ParseInt(f[4], 10, 32)
		lpid, err6 := strconv.ParseInt(f[5], 10, 32)
		natt, err7 := strconv.ParseUint(f[6], 10, 64)
		uid, err8 := strconv.ParseUint(f[7], 10, 32)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil || err5 != nil || err6 != nil || err7 != nil || err8 != nil {
			continue
		}
		out = append(out, sysvEntry{
			Key: int32(key), ShmID: id, Perms: uint32(perms), Size: size,
			CPID: int32(cpid), LPID: int32(lpid), Nattch: natt, UID: uint32(uid),
		})
	}
	return out
}
