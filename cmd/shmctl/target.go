package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/shmkit/shmkit/segment"
	"golang.org/x/sys/unix"
)

// target is one OS object shmctl looks at, found by discovery (ls, doctor)
// or named on the command line.
type target struct {
	Backend string // posix, file, sysv, memfd, fd
	Spec    string // what the user passes back to shmctl stat/rm
	Name    string // memfd name
	Path    string // posix and file: the path; memfd: /proc/PID/fd/N
	SysV    *sysvEntry
	Holders []memfdRef // memfd: every descriptor of it that was found
}

// Accepted on the command line, besides the segment package's specs:
//
//	/proc/PID/fd/N   a descriptor of another process (how memfds are reached)
//	/dev/shm/NAME    the same as posix:/NAME
//	PATH             any other path is file:PATH
//	memfd:NAME       searched among all processes' descriptors (not only ours)
var procFDRe = func(s string) (pid, fd int, ok bool) {
	rest, ok := strings.CutPrefix(s, "/proc/")
	if !ok {
		return 0, 0, false
	}
	p, f, ok := strings.Cut(rest, "/fd/")
	if !ok {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(p)
	fd, err2 := strconv.Atoi(f)
	return pid, fd, err1 == nil && err2 == nil && pid > 0 && fd >= 0
}

// resolve turns a command-line argument into a target.
func resolve(arg string, ps *procScan) (*target, error) {
	if pid, fd, ok := procFDRe(arg); ok {
		t := &target{Backend: "fd", Spec: arg, Path: arg}
		if link, err := os.Readlink(arg); err == nil {
			if name, ok := memfdName(link); ok {
				t.Backend, t.Name = "memfd", name
				t.Holders = []memfdRef{{PID: int32(pid), FD: fd, Name: name}}
			}
		} else {
			return nil, fmt.Errorf("%s: %w", arg, err)
		}
		return t, nil
	}
	if strings.HasPrefix(arg, "shmid:") {
		return nil, fmt.Errorf("%s: a SysV segment without a key (IPC_PRIVATE) is listed by ls but cannot be opened by shmkit", arg)
	}
	if prefix, _, ok := strings.Cut(arg, ":"); ok && slices.Contains([]string{"posix", "file", "sysv", "memfd", "fd"}, prefix) {
		sp, err := segment.ParseSpec(arg)
		if err != nil {
			return nil, err
		}
		switch sp.Backend {
		case segment.BackendPOSIX:
			return &target{Backend: "posix", Spec: sp.String(), Path: "/dev/shm/" + sp.Name}, nil
		case segment.BackendFile:
			abs, err := filepath.Abs(sp.Path)
			if err != nil {
				return nil, err
			}
			return &target{Backend: "file", Spec: "file:" + abs, Path: abs}, nil
		case segment.BackendSysV:
			return resolveSysV(sp)
		case segment.BackendMemfd:
			return resolveMemfd(sp.Name, ps)
		case segment.BackendFD:
			return &target{Backend: "fd", Spec: sp.String(), Path: "/proc/self/fd/" + strconv.Itoa(sp.FD)}, nil
		}
	}
	abs, err := filepath.Abs(arg)
	if err != nil {
		return nil, err
	}
	if name, ok := strings.CutPrefix(abs, "/dev/shm/"); ok && !strings.Contains(name, "/") {
		return &target{Backend: "posix", Spec: "posix:/" + name, Path: abs}, nil
	}
	return &target{Backend: "file", Spec: "file:" + abs, Path: abs}, nil
}

func resolveSysV(sp segment.Spec) (*target, error) {
	key, err := sp.SysVKey()
	if err != nil {
		return nil, err
	}
	ents, err := readSysV()
	if err != nil {
		return nil, fmt.Errorf("%s: read /proc/sysvipc/shm: %w", sp, err)
	}
	for i := range ents {
		if ents[i].Key == key {
			return sysvTarget(&ents[i]), nil
		}
	}
	return nil, fmt.Errorf("%s: no SysV segment with key %#x: %w", sp, uint32(key), fs.ErrNotExist)
}

func sysvTarget(e *sysvEntry) *target {
	t := &target{Backend: "sysv", SysV: e}
	if e.Key == 0 {
		// IPC_PRIVATE: reachable only by shmid, never by a shmkit spec.
		t.Spec = fmt.Sprintf("shmid:%d", e.ShmID)
	} else {
		t.Spec = fmt.Sprintf("sysv:0x%x", uint32(e.Key)) // segment.Spec's canonical form
	}
	return t
}

// resolveMemfd finds the memfd called name among every readable process.
// Several descriptors of one memfd are one target; several different memfds
// of that name are ambiguous, and the error lists their /proc paths.
func resolveMemfd(name string, ps *procScan) (*target, error) {
	groups := memfdGroups(ps)
	var found []*target
	for _, t := range groups {
		if t.Name == name {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("memfd:%s: no readable process holds a memfd of that name: %w", name, fs.ErrNotExist)
	case 1:
		return found[0], nil
	}
	var paths []string
	for _, t := range found {
		paths = append(paths, t.Path)
	}
	return nil, fmt.Errorf("memfd:%s: %d different memfds have that name; name one by path: %s", name, len(found), strings.Join(paths, " "))
}

// memfdGroups folds the memfd descriptors of a scan into one target per
// memfd, reached through its first holder's descriptor.
func memfdGroups(ps *procScan) []*target {
	byID := map[fileID]*target{}
	var out []*target
	for _, m := range ps.memfds {
		t := byID[m.ID]
		if t == nil {
			path := fmt.Sprintf("/proc/%d/fd/%d", m.PID, m.FD)
			t = &target{Backend: "memfd", Spec: path, Name: m.Name, Path: path}
			byID[m.ID] = t
			out = append(out, t)
		}
		t.Holders = append(t.Holders, m)
	}
	return out
}

// discoverHost lists every object on the host that shmctl can look at:
// /dev/shm entries, SysV segments and memfds held by readable processes.
func discoverHost(ps *procScan) ([]*target, []error) {
	var out []*target
	var errs []error
	ts, err := discoverDir("/dev/shm", "posix")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	out = append(out, ts...)
	ents, err := readSysV()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("read /proc/sysvipc/shm: %w", err))
	}
	for i := range ents {
		out = append(out, sysvTarget(&ents[i]))
	}
	out = append(out, memfdGroups(ps)...)
	return out, errs
}

// discoverDir lists the regular files directly inside dir (not recursive,
// symlinks not followed).
func discoverDir(dir, backend string) ([]*target, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	var out []*target
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(abs, e.Name())
		if backend == "posix" {
			out = append(out, &target{Backend: "posix", Spec: "posix:/" + e.Name(), Path: p})
		} else {
			out = append(out, &target{Backend: "file", Spec: "file:" + p, Path: p})
		}
	}
	return out, nil
}

// discoverArgs resolves ls's operands: a directory lists the files in it,
// anything else is resolved as one target.
func discoverArgs(args []string, ps *procScan) ([]*target, []error) {
	var out []*target
	var errs []error
	for _, a := range args {
		if !strings.Contains(strings.SplitN(a, "/", 2)[0], ":") {
			var st unix.Stat_t
			if unix.Stat(a, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
				backend := "file"
				if abs, _ := filepath.Abs(a); abs == "/dev/shm" {
					backend = "posix"
				}
				ts, err := discoverDir(a, backend)
				if err != nil {
					errs = append(errs, err)
				}
				out = append(out, ts...)
				continue
			}
		}
		t, err := resolve(a, ps)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, t)
	}
	return out, errs
}
