package segment

// Design
//
// A Segment is a mapping of an OS memory object plus whatever keeps the
// object reachable (an *os.File for every fd-based backend, a SysV shmid for
// sysv). Everything above this package (layout, sync, the structures) sees
// only Bytes(); the backend is chosen by the spec string so that the same
// program can run over /dev/shm, a persistent file, SysV, or an anonymous
// memfd handed to it by a parent.
//
// Rules the code follows:
//
//   - Create is exclusive everywhere a namespace exists (O_CREAT|O_EXCL|
//     O_NOFOLLOW, IPC_CREAT|IPC_EXCL), and sets the permission bits with
//     fchmod after the exclusive open so the umask cannot widen or narrow
//     them. Until fchmod runs, the bits are mode&^umask, never wider.
//   - Open never maps before it knows the object's real size (fstat or
//     IPC_STAT): mapping past the end of a file turns the first touch into
//     SIGBUS. A zero-size object is ErrEmptyObject. fd-based objects must be
//     regular files (/dev/shm entries and memfds are).
//   - A peer can still shrink a /dev/shm object or a file after we mapped it
//     (then touching the tail faults). memfd segments are sealed against
//     shrinking and growing, which is why they are the safest choice when the
//     peers do not trust each other.
//   - Open admits an object only if its owner is trusted, and a descriptor
//     only if it is sealed (trust.go); Create reserves all of the memory it
//     sizes (reserve, reserveSysV). See "Trust" in the package doc.
//   - Errors keep the errno: fs.ErrExist, fs.ErrNotExist and fs.ErrPermission
//     match through errors.Is, and the message names the spec.
//
// We call unix.Mmap directly rather than using mmap-go: mmap-go cannot ask
// for MAP_POPULATE and knows nothing about SysV attach, and for a plain
// MAP_SHARED mapping of a descriptor it would only add a layer.

import (
	"github.com/shmkit/shmkit/internal/shmerr"

	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// DefaultMode is the permission of a created object unless WithMode says
// otherwise: owner read/write only.
const DefaultMode os.FileMode = 0o600

type options struct {
	mode      os.FileMode
	populate  bool
	readOnly  bool
	unsealed  bool  // WithUnsealed
	trustUIDs []int // WithTrustOwner
	trustAny  bool  // WithTrustAnyOwner
	trustGIDs []int // WithTrustGroup
}

func buildOptions(opts []Option) options {
	o := options{mode: DefaultMode}
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

// Option configures Create, Open and Receive.
type Option func(*options)

// WithMode sets the permission bits of a created object (default 0600).
// Only the permission bits (0777) are used. The bits are applied with fchmod
// (shmget's mode for sysv), so the process umask does not change them.
// Open ignores it.
func WithMode(m os.FileMode) Option {
	return func(o *options) { o.mode = m & fs.ModePerm }
}

// WithPopulate pre-faults the whole mapping when it is made (MAP_POPULATE;
// for sysv, madvise MADV_POPULATE_WRITE/READ where the kernel has it), so
// the first touches of each page do not fault later on a hot path.
//
// It is not needed to be safe from a full /dev/shm: Create always reserves
// the object's memory (fallocate; see Create), whatever the options.
func WithPopulate() Option {
	return func(o *options) { o.populate = true }
}

// ReadOnly makes Open and Receive map the object PROT_READ, open it
// O_RDONLY (for "fd:N" and "memfd:NAME", reopen it read-only through
// /proc/self/fd where the kernel allows, so File() cannot grant write access
// either), or attach it SHM_RDONLY. Writing through Bytes then faults.
// Create rejects it: a creator must size and initialize the object.
func ReadOnly() Option {
	return func(o *options) { o.readOnly = true }
}

// Segment is an attached memory object.
//
// Bytes, Size, Spec, ReadOnly and File may be called from any goroutine
// until Close. Close is safe to call more than once and from several
// goroutines, but no goroutine may use the memory returned by Bytes once
// Close has started: the memory is unmapped and touching it faults.
type Segment struct {
	spec        Spec
	readOnly    bool
	cannotFault bool // see CannotFault

	mu     sync.Mutex
	data   []byte   // the mapping; nil after Close
	file   *os.File // fd-based backends; nil for sysv
	sysv   bool     // data came from shmat, not mmap
	shmID  int      // sysv only
	closed bool
}

// Bytes returns the whole mapping. It stays valid until Close; its length
// is Size. For a read-only segment the memory is mapped PROT_READ: writing
// to it faults (SIGSEGV), which Go reports as a fatal error.
func (s *Segment) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data
}

// Size returns the length of the mapping in bytes (0 after Close).
func (s *Segment) Size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.data)
}

// Spec returns the spec the segment was made from. For a received segment,
// see Receive.
func (s *Segment) Spec() Spec { return s.spec }

// ReadOnly reports whether the segment is mapped PROT_READ.
func (s *Segment) ReadOnly() bool { return s.readOnly }

// CannotFault reports whether no peer can make touching the mapping fault
// with SIGBUS, as the kernel told at Create, Open or Receive (the answer is
// kept: a later change of the overcommit mode does not reach it): the object
// is a memfd on ordinary shared memory that carried F_SEAL_SHRINK before its
// size was read (every memfd Create makes, and every sealed one Open and
// Receive admit), and a page a peer punches out of it comes back on the next
// touch because the kernel cannot refuse to charge it (vm.overcommit_memory
// 1, or 0 on Linux 5.2 or later; see cannotfault.go). The structures leave
// out their fault guard where it holds. False for posix: and file: objects
// (anyone with write access can ftruncate them), an unsealed or hugetlbfs
// memfd, a system with strict overcommit (2), and sysv segments (which
// cannot be truncated, but may be huge-page backed without a reserve: that
// is not visible from here).
func (s *Segment) CannotFault() bool { return s.cannotFault }

// File returns the descriptor that keeps the object alive (posix, file,
// memfd, fd), or nil for sysv. It belongs to the Segment and is closed by
// Close; to pass the object to a child, put it in exec.Cmd.ExtraFiles before
// Close (the child sees it as fd 3+i and can Open "fd:N", or "memfd:NAME"
// for a memfd).
func (s *Segment) File() *os.File { return s.file }

// Close unmaps the segment and closes its descriptor. The object itself
// stays until Remove (or, for memfd, until the last descriptor and mapping
// of it anywhere is gone). Calling Close again returns nil.
func (s *Segment) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.data != nil {
		runUnmapHooks(s.data)
		var err error
		if s.sysv {
			err = unix.SysvShmDetach(s.data)
		} else {
			err = unix.Munmap(s.data)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("segment %s: unmap: %w", s.spec, err))
		}
		s.data = nil
	}
	if s.file != nil {
		if err := s.file.Close(); err != nil {
			errs = append(errs, fmt.Errorf("segment %s: close: %w", s.spec, err))
		}
	}
	return errors.Join(errs...)
}

var (
	hooksMu    sync.Mutex
	unmapHooks []func(mem []byte)
)

// OnUnmap registers f to run on a mapping's bytes just before Close unmaps
// them. It is for packages that keep process-local state about objects
// living in segments: package sync uses it to drop robust-lock registrations
// for locks inside the mapping, so the kernel never walks a robust list into
// unmapped (or remapped) memory when this process exits.
func OnUnmap(f func(mem []byte)) {
	hooksMu.Lock()
	defer hooksMu.Unlock()
	unmapHooks = append(unmapHooks, f)
}

func runUnmapHooks(mem []byte) {
	hooksMu.Lock()
	hooks := unmapHooks
	hooksMu.Unlock()
	for _, f := range hooks {
		f(mem)
	}
}

// Create makes a new object named by spec, size bytes long and zero-filled,
// and maps it read-write. It never opens an existing object: if the name is
// taken the error wraps fs.ErrExist. Create of "fd:N" is not supported (the
// descriptor's object already exists: Open it).
//
// A memfd has no namespace, so "memfd:NAME" never collides: every Create
// makes a new anonymous object, sealed against shrinking and growing.
//
// Create reserves the whole size before it returns: fallocate for posix,
// file and memfd (zeros written where the filesystem has no fallocate), and
// for sysv MADV_POPULATE_WRITE after attaching. A filesystem (or, for
// memfd and sysv, memory) that cannot hold size bytes fails Create with an
// error that wraps the errno (errors.Is(err, syscall.ENOSPC) for a full
// /dev/shm or disk) and leaves no object behind, instead of a later first
// touch killing the process with SIGBUS. The cost is that every page is
// allocated and zeroed up front.
func Create(spec string, size int, opts ...Option) (*Segment, error) {
	sp, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	o := buildOptions(opts)
	if o.readOnly {
		return nil, shmerr.WrapOp("segment", "create", sp.String(), fmt.Errorf("ReadOnly is an Open option: %w", fs.ErrInvalid))
	}
	if size <= 0 {
		return nil, shmerr.WrapOp("segment", "create", sp.String(), fmt.Errorf("size %d, want > 0: %w", size, fs.ErrInvalid))
	}
	switch sp.Backend {
	case BackendPOSIX, BackendFile:
		return createPath(sp, size, o)
	case BackendMemfd:
		return createMemfd(sp, size, o)
	case BackendSysV:
		return createSysV(sp, size, o)
	case BackendFD:
		return nil, shmerr.WrapOp("segment", "create", sp.String(), fmt.Errorf("an fd names an existing object; use Open: %w", errors.ErrUnsupported))
	}
	return nil, shmerr.WrapOp("segment", "create", sp.String(), fmt.Errorf("%w", ErrBadSpec))
}

// Open maps an existing object named by spec. If it does not exist the
// error wraps fs.ErrNotExist. The object's real size is read (fstat,
// IPC_STAT) before mapping; a zero-size object is ErrEmptyObject.
//
// Open refuses an object owned by neither this process's effective uid nor
// root (for sysv: whose owner or creator is neither), with an error that
// wraps shmerr.ErrUntrusted (layout.ErrUntrusted; it matches
// fs.ErrPermission too) and names the owner and the mode: another local
// user could have planted it. WithTrustOwner and WithTrustGroup name
// further owners and groups to trust.
//
// "fd:N" and "memfd:NAME" also refuse a descriptor that is not sealed with
// F_SEAL_SHRINK and F_SEAL_GROW (ErrUntrusted again), unless WithUnsealed;
// see the package documentation.
//
// "fd:N" does not take ownership of descriptor N: Open duplicates it, and
// Close closes only the duplicate.
//
// "memfd:NAME" finds a memfd that this process already holds (inherited
// through exec.Cmd.ExtraFiles, received with Receive, or created here) by
// looking for a descriptor in /proc/self/fd whose link is
// "/memfd:NAME (deleted)". A memfd cannot be found in any other way: pass
// it by descriptor.
func Open(spec string, opts ...Option) (*Segment, error) {
	sp, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	o := buildOptions(opts)
	switch sp.Backend {
	case BackendPOSIX, BackendFile:
		return openPath(sp, o)
	case BackendMemfd:
		return openMemfd(sp, o)
	case BackendFD:
		return openFD(sp, o)
	case BackendSysV:
		return openSysV(sp, o)
	}
	return nil, shmerr.WrapOp("segment", "open", sp.String(), fmt.Errorf("%w", ErrBadSpec))
}

// Remove deletes the object named by spec so that nobody can open it by
// name any more; processes that have it mapped keep their mapping until
// they Close. posix and file unlink, sysv does IPC_RMID (the memory goes
// when the last process detaches). An absent object is fs.ErrNotExist.
//
// "memfd:NAME" is a successful no-op: a memfd is anonymous, and it is freed
// when the last descriptor and mapping of it are gone. "fd:N" fails with an
// error wrapping errors.ErrUnsupported: the descriptor may refer to a named
// object that a descriptor cannot unlink; Remove that object by its name.
func Remove(spec string) error {
	sp, err := ParseSpec(spec)
	if err != nil {
		return err
	}
	switch sp.Backend {
	case BackendPOSIX, BackendFile:
		if err := unix.Unlink(objectPath(sp)); err != nil {
			return pathErr("remove", sp, err)
		}
		return nil
	case BackendSysV:
		return removeSysV(sp)
	case BackendMemfd:
		return nil
	case BackendFD:
		return shmerr.WrapOp("segment", "remove", sp.String(), fmt.Errorf("a descriptor has no name to remove: %w", errors.ErrUnsupported))
	}
	return shmerr.WrapOp("segment", "remove", sp.String(), fmt.Errorf("%w", ErrBadSpec))
}

// pathErr wraps a syscall error with the operation and the canonical spec.
// syscall.Errno already matches fs.ErrExist (EEXIST), fs.ErrNotExist
// (ENOENT) and fs.ErrPermission (EACCES, EPERM) through errors.Is.
func pathErr(op string, sp Spec, err error) error {
	return &fs.PathError{Op: "segment " + op, Path: sp.String(), Err: err}
}

// mapFlags returns mmap protection and flags for o.
func mapFlags(o options) (prot, flags int) {
	prot = unix.PROT_READ
	if !o.readOnly {
		prot |= unix.PROT_WRITE
	}
	flags = unix.MAP_SHARED
	if o.populate {
		flags |= unix.MAP_POPULATE
	}
	return prot, flags
}
