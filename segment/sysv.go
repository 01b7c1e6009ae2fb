package segment

import (
	"fmt"
	"io/fs"

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
		return nil, pathErr(op, sp, fmt.Errorf("shmctl IPC_STAT: %w", err))
	}
	if desc.Segsz == 0 {
		return nil, pathErr(op, sp, ErrEmptyObject)
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
		return nil, pathErr(op, sp, fmt.Errorf("shmat: %w", err))
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
