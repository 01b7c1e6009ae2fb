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
// A memfd has no name anyone else can look up: hand it to a child through
// Segment.File in exec.Cmd.ExtraFiles (the child opens "fd:3", or
// "memfd:NAME", which searches the child's own descriptors), or to any
// process over a Unix socket with Send and Receive.
package segment
