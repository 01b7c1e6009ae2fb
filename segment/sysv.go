package segment

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"golang.org/x/sys/unix"
)

// SysV shared memory: shmget by key, shmat to map, IPC_RMID to remove.
// Unlike the fd-based backends a SysV segment is not reference-counted by
// descriptors: it lives until IPC_RMID (and then until the last detach),
// even if every process that used it has exited. ipcs(1) lists them.

func sysvKey(sp Spec, op string) (int, error) {
	key, err := sp.SysVKey()
	if err != nil {
		return 0, pathErr(op, sp, err)
	}
	return int(key), nil
}

func createSysV(sp Spec, size int, o options) (*Segment, error) {
	key, err := sysvKey(sp, "create")
	if err != nil {
		return nil, err
	}
	// shmget takes the permission bits directly; the umask does not apply.
	id, err := unix.SysvShmGet(key, size, unix.IPC_CREAT|unix.IPC_EXCL|int(o.mode))
	if err != nil {
		return nil, pathErr("create", sp, fmt.Errorf("shmget %d bytes: %w", size, err))
	}
	seg, err := attachSysV(sp, id, o, "create")
	if err == nil {
		if err = reserveSysV(sp, seg.data); err != nil {
			seg.Close()
		}
	}
	if err != nil {
		// Ours, never attached by anyone else yet: take it back.
		_, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
		return nil, err
	}
	return seg, nil
}

func openSysV(sp Spec, o options) (*Segment, error) {
	key, err := sysvKey(sp, "open")
	if err != nil {
		return nil, err
	}
	id, err := unix.SysvShmGet(key, 0, 0)
	if err != nil {
		return nil, pathErr("open", sp, fmt.Errorf("shmget: %w", err))
	}
	return attachSysV(sp, id, o, "open")
}

// attachSysV maps the segment with id. The size comes from IPC_STAT, never
// from the caller.
func attachSysV(sp Spec, id int, o options, op string) (*Segment, error) {
	var desc unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &desc); err != nil {
		return nil, deniedErr(op, sp, o, "shmctl IPC_STAT", err)
	}
	if op != "create" {
		if err := checkSysVOwner(sp, o, op, &desc.Perm); err != nil {
			return nil, err
		}
	}
	if desc.Segsz == 0 {
		return nil, pathErr(op, sp, &EmptyError{Origin: Origin{Changed: time.Unix(desc.Ctime, 0), CreatorPID: desc.Cpid}})
	}
	if desc.Segsz > uint64(maxInt) {
		return nil, pathErr(op, sp, fmt.Errorf("size %d does not fit in an int: %w", desc.Segsz, fs.ErrInvalid))
	}
	flag := 0
	if o.readOnly {
		flag = unix.SHM_RDONLY
	}
	// SysvShmAttach sizes the slice from its own IPC_STAT after shmat.
	data, err := unix.SysvShmAttach(id, 0, flag)
	if err != nil {
		return nil, deniedErr(op, sp, o, "shmat", err)
	}
	if op != "create" {
		// The id was checked before shmat; check what we attached (an id
		// removed and reused in between is another segment). The creator
		// cannot change while we are attached.
		var now unix.SysvShmDesc
		_, err := unix.SysvShmCtl(id, unix.IPC_STAT, &now)
		if err == nil {
			err = checkSysVOwner(sp, o, op, &now.Perm)
		} else {
			err = pathErr(op, sp, fmt.Errorf("shmctl IPC_STAT: %w", err))
		}
		if err != nil {
			_ = unix.SysvShmDetach(data)
			return nil, err
		}
	}
	if o.populate {
		populate(data, o.readOnly)
	}
	return &Segment{spec: sp, readOnly: o.readOnly, data: data, sysv: true, shmID: id}, nil
}

// populate pre-faults a mapping that could not use MAP_POPULATE. Kernels
// before 5.14 lack MADV_POPULATE_*; then it does nothing, which only costs
// the page faults later.
func populate(b []byte, readOnly bool) {
	advice := unix.MADV_POPULATE_WRITE
	if readOnly {
		advice = unix.MADV_POPULATE_READ
	}
	_ = unix.Madvise(b, advice)
}

// reserveSysV faults in every page of a new SysV segment for writing, so
// that the memory is allocated at Create rather than at a first touch.
// A SysV segment is not on /dev/shm: it is limited by shmmax, shmall and
// memory (including a cgroup's), not by a filesystem's size, so running
// out shows as ENOMEM here (or the OOM killer), never as SIGBUS. Kernels
// before 5.14 have no MADV_POPULATE_WRITE (EINVAL); there the segment's
// pages are allocated on first touch, as before.
func reserveSysV(sp Spec, b []byte) error {
	for {
		err := unix.Madvise(b, unix.MADV_POPULATE_WRITE)
		switch {
		case err == nil, errors.Is(err, unix.EINVAL):
			return nil
		case errors.Is(err, unix.EINTR):
			// Populated pages stay populated; go on where it stopped.
			continue
		default:
			return reserveErr(sp, len(b), "madvise MADV_POPULATE_WRITE", err)
		}
	}
}

func removeSysV(sp Spec) error {
	key, err := sysvKey(sp, "remove")
	if err != nil {
		return err
	}
	id, err := unix.SysvShmGet(key, 0, 0)
	if err != nil {
		return pathErr("remove", sp, fmt.Errorf("shmget: %w", err))
	}
	if _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); err != nil {
		return pathErr("remove", sp, fmt.Errorf("shmctl IPC_RMID: %w", err))
	}
	return nil
}
