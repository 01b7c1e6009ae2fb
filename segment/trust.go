package segment

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/shmkit/shmkit/internal/shmerr"
	"golang.org/x/sys/unix"
)

// Trust checks: who may have made the object we are about to map, and
// whether a descriptor handed to us can be shrunk under our feet.
//
// Owner rule. Open, Receive and "fd:N" refuse an object owned by neither
// this process's effective uid nor root, unless WithTrustOwner or
// WithTrustGroup names its owner or group. Another local user can create
// /dev/shm/NAME (or a file, or a SysV key) before we do, mode 0666, and
// read or steer everything we put in it; the owner is the one thing such a
// user cannot fake (chown needs CAP_CHOWN). SysV is the exception: the
// owner of a SysV segment may IPC_SET its uid and gid to anything, so we
// check the creator (cuid, cgid), which cannot change, as well.
//
// Seal rule. A descriptor is only a reference: whoever else holds it (the
// sender, the parent) can ftruncate it after we mapped it, and then every
// touch past the new end is SIGBUS, which kills a Go program. A memfd can
// be sealed against that (F_SEAL_SHRINK, F_SEAL_GROW) and the seals are
// visible to us (F_GET_SEALS), so a descriptor that does not carry them is
// refused unless the caller says WithUnsealed.

// WithTrustOwner makes Open, Receive and "fd:N" accept an object owned by
// uid, in addition to this process's effective uid and root (always
// trusted). For SysV both the owner and the creator must be trusted. It may
// be given more than once. Create ignores it.
func WithTrustOwner(uid int) Option {
	return func(o *options) { o.trustUIDs = append(o.trustUIDs, uid) }
}

// WithTrustGroup makes Open, Receive and "fd:N" accept an object whose group
// is gid, whoever owns it: every member of that group is trusted. For SysV
// both the group and the creator's group (cgid) count, like the owner. It
// may be given more than once. Create ignores it.
func WithTrustGroup(gid int) Option {
	return func(o *options) { o.trustGIDs = append(o.trustGIDs, gid) }
}

// WithUnsealed makes Open ("fd:N", "memfd:NAME") and Receive accept a
// descriptor that is not sealed against shrinking and growing (a memfd
// made without seals, a /dev/shm object or a file passed by descriptor).
//
// This makes the caller vulnerable: anyone else holding the descriptor can
// truncate the object after it is mapped, and the next touch of the lost
// part kills this process with SIGBUS. Use it only when every holder of the
// descriptor is trusted as much as this process, or when the structure
// layer catches faults on this segment.
func WithUnsealed() Option {
	return func(o *options) { o.unsealed = true }
}

// WithTrustAnyOwner skips the owner rule: Open accepts an object whoever
// owns it. It is for inspection tools (shmctl, run by root to look at every
// user's segments) that validate everything they read and never hand the
// contents to a program as trusted data. A program sharing data must name
// the owners it trusts with WithTrustOwner or WithTrustGroup instead. The
// seal rule still applies.
func WithTrustAnyOwner() Option {
	return func(o *options) { o.trustAny = true }
}

// trusts reports whether an object owned by uid with group gid may be used.
func (o *options) trusts(uid, gid uint32) bool {
	if o.trustAny || uid == 0 || uid == uint32(os.Geteuid()) {
		return true
	}
	for _, u := range o.trustUIDs {
		if u >= 0 && uint32(u) == uid {
			return true
		}
	}
	for _, g := range o.trustGIDs {
		if g >= 0 && uint32(g) == gid {
			return true
		}
	}
	return false
}

// checkOwner refuses an object that st says is owned by an untrusted user.
func checkOwner(sp Spec, o options, op string, st *unix.Stat_t) error {
	if o.trusts(st.Uid, st.Gid) {
		return nil
	}
	return untrusted(sp, op, "owned by", st.Uid, st.Gid, st.Mode&0o7777)
}

// checkSysVOwner refuses a SysV segment whose owner or creator is untrusted.
func checkSysVOwner(sp Spec, o options, op string, p *unix.SysvIpcPerm) error {
	if !o.trusts(p.Uid, p.Gid) {
		return untrusted(sp, op, "owned by", p.Uid, p.Gid, p.Mode&0o777)
	}
	if !o.trusts(p.Cuid, p.Cgid) {
		return untrusted(sp, op, "created by", p.Cuid, p.Cgid, p.Mode&0o777)
	}
	return nil
}

func untrusted(sp Spec, op, how string, uid, gid, mode uint32) error {
	return pathErr(op, sp, fmt.Errorf(
		"%s uid %s (group %s, mode %04o), which is neither this process's euid %d nor root: "+
			"another user could have planted it; to trust it pass segment.WithTrustOwner(%d) "+
			"or segment.WithTrustGroup(%d): %w",
		how, userName(uid), groupName(gid), mode, os.Geteuid(), uid, gid, shmerr.ErrUntrusted))
}

// userName returns "UID" or "UID (name)". It runs only on the error path.
func userName(uid uint32) string {
	s := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(s); err == nil && u.Username != "" {
		return s + " (" + u.Username + ")"
	}
	return s
}

func groupName(gid uint32) string {
	s := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(s); err == nil && g.Name != "" {
		return s + " (" + g.Name + ")"
	}
	return s
}

// neededSeals are the seals a descriptor we did not create must carry.
const neededSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW

// checkSeals refuses a descriptor that is not sealed against shrinking and
// growing, unless o allows it.
func checkSeals(sp Spec, o options, op string, fd int) error {
	if o.unsealed {
		return nil
	}
	const advice = "a peer holding it could truncate it and make this process take SIGBUS; " +
		`pass a memfd made by segment.Create("memfd:NAME") (sealed), or accept the risk with segment.WithUnsealed()`
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		if errors.Is(err, unix.EINVAL) {
			// Not a shmem file (a file on disk, FUSE, ...): it cannot
			// carry seals at all.
			return pathErr(op, sp, fmt.Errorf("descriptor %d is not a memfd and cannot be sealed against shrinking: %s: %w",
				fd, advice, shmerr.ErrUntrusted))
		}
		return pathErr(op, sp, fmt.Errorf("descriptor %d: F_GET_SEALS: %w", fd, err))
	}
	if missing := neededSeals &^ seals; missing != 0 {
		return pathErr(op, sp, fmt.Errorf("descriptor %d is not sealed (has %s, missing %s): %s: %w",
			fd, sealNames(seals), sealNames(missing), advice, shmerr.ErrUntrusted))
	}
	return nil
}

// sealNames renders a seal set: "F_SEAL_SHRINK|F_SEAL_GROW", or "no seals".
func sealNames(s int) string {
	var names []string
	for _, n := range []struct {
		bit  int
		name string
	}{
		{unix.F_SEAL_SEAL, "F_SEAL_SEAL"},
		{unix.F_SEAL_SHRINK, "F_SEAL_SHRINK"},
		{unix.F_SEAL_GROW, "F_SEAL_GROW"},
		{unix.F_SEAL_WRITE, "F_SEAL_WRITE"},
		{unix.F_SEAL_FUTURE_WRITE, "F_SEAL_FUTURE_WRITE"},
		{unix.F_SEAL_EXEC, "F_SEAL_EXEC"},
	} {
		if s&n.bit != 0 {
			names = append(names, n.name)
			s &^= n.bit
		}
	}
	if s != 0 {
		names = append(names, fmt.Sprintf("%#x", s))
	}
	if len(names) == 0 {
		return "no seals"
	}
	return strings.Join(names, "|")
}

// sameObject reports whether the descriptor described by st is the object
// that path names now (same device and inode; the name is not followed if
// it is a symlink).
func sameObject(st *unix.Stat_t, path string) bool {
	var pst unix.Stat_t
	if err := unix.Lstat(path, &pst); err != nil {
		return false
	}
	return pst.Dev == st.Dev && pst.Ino == st.Ino
}
