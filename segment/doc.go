// Package segment creates, opens and removes OS shared-memory objects named
// by a spec string, and maps them into the process.
//
// Spec grammar:
//
//	spec    = posix | file | sysv | memfd | fd
//	posix   = "posix:" ["/"] NAME      /dev/shm/NAME (shm_open semantics); NAME is one
//	                                   path component: no '/', not "." or "..", no NUL,
//	                                   at most 255 bytes. Canonical form "posix:/NAME".
//	file    = "file:" PATH             a regular file, absolute or relative; persists.
//	sysv    = "sysv:" KEY              SysV shm by key: KEY is "0x" HEX or DECIMAL
//	                                   (32 bits; 0 = IPC_PRIVATE is refused).
//	        | "sysv:ftok:" PATH ":" ID key = ftok(PATH, ID), glibc's formula; ID 1..255.
//	                                   PATH may contain ':' (the last one separates ID).
//	memfd   = "memfd:" NAME            memfd_create(NAME), sealed against shrink/grow;
//	                                   NAME has no '/' or NUL, at most 249 bytes.
//	fd      = "fd:" N                  descriptor N of this process (inherited via
//	                                   exec.Cmd.ExtraFiles, or received over a socket).
//
// Examples: "posix:/jobs", "file:/var/lib/app/state.shm", "sysv:0x5eed",
// "sysv:ftok:/etc/app.conf:7", "memfd:ring", "fd:3".
//
// Create is exclusive (an existing object is fs.ErrExist), Open needs an
// existing one (fs.ErrNotExist), Remove deletes the name. Objects are
// created 0600 unless WithMode says otherwise. Open checks the object's
// real size before mapping; a zero-size object is ErrEmptyObject.
//
// # Trust
//
// Whoever shares a segment with you can write anything into it; the
// structures above this package validate what they read. This package
// guards against the rest: objects planted by other users, and objects
// that shrink under the mapping (a touch past the end of a mapped object
// is SIGBUS, which kills a Go program).
//
// Owner. Open, Receive, "fd:N" and "memfd:NAME" refuse an object owned by
// neither the caller's effective uid nor root, with an error wrapping
// shmerr.ErrUntrusted (re-exported as layout.ErrUntrusted; it matches
// fs.ErrPermission) that names the owner, the mode and the option that
// would trust it. Another local user can create /dev/shm/NAME, a file or a
// SysV key before you, mode 0666, and read everything you write to it; a
// create-or-open pattern would otherwise walk right in. WithTrustOwner(uid)
// and WithTrustGroup(gid) trust more owners or groups. An object you own
// with a permissive mode (WithMode(0o666)) is your choice and is accepted.
// For sysv both the owner and the creator (shm_perm.cuid, cgid) must be
// trusted, because an owner may give a SysV segment away with IPC_SET.
//
// Size. Create reserves every byte it makes (fallocate; for sysv
// MADV_POPULATE_WRITE), so a full /dev/shm or disk fails Create with ENOSPC
// instead of killing the process at a first touch. What protects a
// segment from being shrunk later, per backend:
//
//   - memfd: sealed (F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_SEAL) by Create;
//     nobody, the creator included, can change its size. Safe between
//     peers that do not trust each other, with one reach left to a peer
//     holding the descriptor: fallocate PUNCH_HOLE, which no seal but
//     F_SEAL_WRITE stops. A punched page comes back zeroed on the next
//     touch, or, where the kernel may refuse to charge it (strict
//     overcommit, vm.overcommit_memory=2), as SIGBUS; the structures keep
//     their fault guard there (use their WithFaultGuard on such systems).
//   - posix, file: not protected. Anyone with write access (by name, or
//     through a descriptor) can ftruncate the object, and a mapper then
//     takes SIGBUS on the lost part. The structures catch such faults
//     where they can (their fault guard; see each package's "Truncated
//     segments"), at a cost per guarded call.
//   - sysv: cannot be truncated; its size is fixed at shmget.
//
// Segment.CannotFault reports, asked of the kernel at Create, Open or
// Receive, when no peer can make the mapping fault at all (a sealed memfd
// on ordinary shared memory, where the kernel cannot refuse to charge a
// page: overcommit mode 1, or 0 on Linux 5.2 or later): the structures
// leave out their fault guard there.
//
// Descriptors. "fd:N", "memfd:NAME" (a descriptor this process holds) and
// Receive require the descriptor to carry F_SEAL_SHRINK and F_SEAL_GROW
// (checked with F_GET_SEALS): a memfd made by Create here or in a peer has
// them. Anything else (an unsealed memfd, a /dev/shm object or a file
// passed by descriptor) is refused with ErrUntrusted naming the missing
// seals, unless WithUnsealed, which accepts the risk of SIGBUS by
// truncation. One exception: Receive of a posix or file segment whose
// descriptor is the very object its name names (same device and inode)
// gets the checks Open by that name gets, no more, since a peer could
// truncate it by name anyway. A received sysv segment needs no seals.
//
// What "fd:" does not guarantee: that the object is in memory. A sealed
// memfd is; but with WithUnsealed a descriptor of a file on a network or
// FUSE filesystem can be mapped, and then a first touch of a page can block
// for as long as that filesystem's server likes (a FUSE daemon can hang the
// toucher forever) or fail with SIGBUS on an I/O error. The owner check
// limits who can hand you such a file, not what it is.
//
// A memfd has no name anyone else can look up: hand it to a child through
// Segment.File in exec.Cmd.ExtraFiles (the child opens "fd:3", or
// "memfd:NAME", which searches the child's own descriptors), or to any
// process over a Unix socket with Send and Receive.
package segment
