package segment

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// A mapping faults (SIGBUS) when it touches a page the object cannot give
// it: one past the object's end, or one the kernel refuses to allocate.
// A peer with the descriptor can cause the first by shrinking the object
// (ftruncate), and the second by punching a hole (fallocate
// PUNCH_HOLE, which F_SEAL_SHRINK does not stop) where the refault's
// memory charge can fail. cannotFault says when neither can happen, which
// is when the structures may leave out their fault guard
// (Segment.CannotFault):
//
//   - F_SEAL_SHRINK was set before the size was read, and the mapping fits
//     in that size. Read the other way round, a peer could shrink the
//     object and then seal it in between.
//   - The object is on tmpfs (a memfd's own mount is): not hugetlbfs,
//     where a refault finds the huge page pool empty.
//   - A refault's charge cannot fail: a tmpfs page that the kernel cannot
//     account is SIGBUS, not OOM (shmem_acct_blocks' failure is reported
//     as -ENOSPC so that "a failure on a sparse tmpfs mapping will give
//     SIGBUS"). A memfd is VM_NORESERVE, so each refault is charged
//     against the commit limit, which is enforced only when
//     vm.overcommit_memory is 2; under 0 (the heuristic) a one-page
//     charge fails only on kernels before 5.2, which compared it with
//     free memory instead of RAM plus swap.
//
// Any error or doubt means it can fault.
func cannotFault(fd, size int) bool {
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil || seals&unix.F_SEAL_SHRINK == 0 {
		return false
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Size < int64(size) {
		return false
	}
	var fs unix.Statfs_t
	if unix.Fstatfs(fd, &fs) != nil || fs.Type != unix.TMPFS_MAGIC {
		return false
	}
	return refaultCannotFail()
}

// refaultCannotFail reports whether a tmpfs page's memory charge cannot
// fail (see cannotFault): overcommit mode 1, or 0 (the heuristic) on Linux
// 5.2 or later. The mode is read at each Create, Open and Receive, and a
// Segment keeps the answer it got; the kernel release is read once.
func refaultCannotFail() bool {
	b, err := os.ReadFile(overcommitFile)
	if err != nil {
		return false
	}
	switch string(bytes.TrimSpace(b)) {
	case "1": // always overcommit
		return true
	case "0":
		return kernelAtLeast52()
	}
	return false
}

// overcommitFile is where the overcommit mode is read (a variable for
// tests).
var overcommitFile = "/proc/sys/vm/overcommit_memory"

// kernelAtLeast52 reports whether the running kernel is Linux 5.2 or later.
var kernelAtLeast52 = sync.OnceValue(func() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	major, minor, ok := parseRelease(unix.ByteSliceToString(u.Release[:]))
	return ok && (major > 5 || major == 5 && minor >= 2)
})

// parseRelease reads the major and minor numbers of a kernel release
// string ("6.18.0-foo": 6, 18).
func parseRelease(r string) (major, minor int, ok bool) {
	maj, rest, found := strings.Cut(r, ".")
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	major, err1 := strconv.Atoi(maj)
	minor, err2 := strconv.Atoi(rest[:end])
	return major, minor, found && err1 == nil && err2 == nil
}
