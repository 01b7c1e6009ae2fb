package segment

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// deniedErr wraps err from opening or attaching the object of sp. When err
// is EACCES it says who owns the object, its mode, and which access was
// needed, so that "permission denied" can be acted on. The errno stays
// wrapped: errors.Is(err, fs.ErrPermission) holds.
func deniedErr(op string, sp Spec, o options, how string, err error) error {
	wrapped := err
	if how != "" {
		wrapped = fmt.Errorf("%s: %w", how, err)
	}
	if !errors.Is(err, unix.EACCES) {
		return pathErr(op, sp, wrapped)
	}
	need := "read-write access (it is opened read-write; segment.ReadOnly() asks for read access only)"
	if o.readOnly {
		need = "read access"
	}
	uid, gid, mode, ok := ownerOf(sp)
	if !ok {
		return pathErr(op, sp, fmt.Errorf("this process (euid %d, egid %d) needs %s: %w", os.Geteuid(), os.Getegid(), need, wrapped))
	}
	return pathErr(op, sp, fmt.Errorf("owned by uid %s (group %s), mode %04o: this process (euid %d, egid %d) needs %s: %w",
		userName(uid), groupName(gid), mode, os.Geteuid(), os.Getegid(), need, wrapped))
}

// ownerOf finds the owner and mode of the object named by sp without
// opening it: lstat for posix and file, /proc/sysvipc/shm for sysv (whose
// IPC_STAT itself needs read permission).
func ownerOf(sp Spec) (uid, gid, mode uint32, ok bool) {
	switch sp.Backend {
	case BackendPOSIX, BackendFile:
		var st unix.Stat_t
		if unix.Lstat(objectPath(sp), &st) != nil {
			return 0, 0, 0, false
		}
		return st.Uid, st.Gid, st.Mode & 0o7777, true
	case BackendSysV:
		key, err := sp.SysVKey()
		if err != nil {
			return 0, 0, 0, false
		}
		b, err := os.ReadFile("/proc/sysvipc/shm")
		if err != nil {
			return 0, 0, 0, false
		}
		// key shmid perms size cpid lpid nattch uid gid ...
		for _, line := range bytes.Split(b, []byte("\n"))[1:] {
			f := strings.Fields(string(line))
			if len(f) < 9 || f[0] != strconv.FormatInt(int64(key), 10) {
				continue
			}
			perms, err1 := strconv.ParseUint(f[2], 8, 32)
			u, err2 := strconv.ParseUint(f[7], 10, 32)
			g, err3 := strconv.ParseUint(f[8], 10, 32)
			if err1 != nil || err2 != nil || err3 != nil {
				return 0, 0, 0, false
			}
			return uint32(u), uint32(g), uint32(perms) & 0o777, true
		}
	}
	return 0, 0, 0, false
}
