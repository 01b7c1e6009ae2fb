package segment

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrBadSpec is wrapped by every error about a malformed spec string. The
// wrapping error quotes the spec and names what is wrong with it.
var ErrBadSpec = errors.New("segment: bad spec")

// ErrEmptyObject is wrapped when Open (or Receive) finds an object of size
// zero: there is nothing to map. The layout package maps it to its own
// ErrTooSmall; segment does not import layout (layout imports segment).
var ErrEmptyObject = errors.New("segment: object has zero size")

// Backend names the kind of OS object behind a segment.
type Backend uint8

// The backends. The zero Backend is invalid, so a zero Spec never names an
// object by accident.
const (
	BackendPOSIX Backend = iota + 1 // "posix:/name": /dev/shm/name, shm_open semantics
	BackendFile                     // "file:/path": a regular file, persists
	BackendSysV                     // "sysv:0x1234", "sysv:ftok:/path:7": shmget/shmat
	BackendMemfd                    // "memfd:name": memfd_create, sealed, shared by fd
	BackendFD                       // "fd:3": an inherited or received descriptor
)

var backendNames = [...]string{
	BackendPOSIX: "posix",
	BackendFile:  "file",
	BackendSysV:  "sysv",
	BackendMemfd: "memfd",
	BackendFD:    "fd",
}

// String returns the spec prefix of b: "posix", "file", "sysv", "memfd", "fd".
func (b Backend) String() string {
	if int(b) < len(backendNames) && backendNames[b] != "" {
		return backendNames[b]
	}
	return "Backend(" + strconv.Itoa(int(b)) + ")"
}

// Limits on names, matching the kernel's.
const (
	// maxPOSIXName is NAME_MAX: /dev/shm/name is one directory entry.
	maxPOSIXName = 255
	// maxMemfdName is what memfd_create accepts: NAME_MAX minus "memfd:".
	maxMemfdName = 249
	// maxPath is PATH_MAX including the terminating NUL.
	maxPath = 4095
)

// Spec is a parsed segment spec. Which fields matter depends on Backend:
//
//	BackendPOSIX  Name: the object's name in /dev/shm, WITHOUT the leading
//	              slash ("posix:/jobs" has Name "jobs").
//	BackendFile   Path: as written (absolute or relative to the working
//	              directory at Create/Open time).
//	BackendSysV   Key, or (when FtokPath is set) FtokPath and FtokID, from
//	              which the key is derived when the segment is created or
//	              opened (see Ftok). Key is 0 for ftok specs.
//	BackendMemfd  Name: the memfd name (shown in /proc/PID/fd as
//	              "/memfd:Name (deleted)"). Not a namespace: see Open.
//	BackendFD     FD: the descriptor number in this process.
type Spec struct {
	Backend  Backend
	Name     string
	Path     string
	Key      int32
	FtokPath string
	FtokID   uint8
	FD       int
}

// ParseSpec parses a spec string. The grammar is in the package
// documentation. Errors wrap ErrBadSpec and say what is wrong.
func ParseSpec(s string) (Spec, error) {
	prefix, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Spec{}, badSpec(s, "missing backend prefix (want posix:, file:, sysv:, memfd: or fd:)")
	}
	var sp Spec
	var err error
	switch prefix {
	case "posix":
		sp, err = parsePOSIX(rest)
	case "file":
		sp, err = parseFile(rest)
	case "sysv":
		sp, err = parseSysV(rest)
	case "memfd":
		sp, err = parseMemfd(rest)
	case "fd":
		sp, err = parseFD(rest)
	default:
		return Spec{}, badSpec(s, fmt.Sprintf("unknown backend %q", prefix))
	}
	if err != nil {
		return Spec{}, badSpec(s, err.Error())
	}
	return sp, nil
}

func badSpec(s, why string) error {
	return fmt.Errorf("%w %q: %s", ErrBadSpec, s, why)
}

func parsePOSIX(rest string) (Spec, error) {
	// Like glibc's shm_open, one leading slash is optional; the canonical
	// form has it.
	name := strings.TrimPrefix(rest, "/")
	if err := checkPOSIXName(name); err != nil {
		return Spec{}, err
	}
	return Spec{Backend: BackendPOSIX, Name: name}, nil
}

func checkPOSIXName(name string) error {
	switch {
	case name == "":
		return errors.New("posix name is empty")
	case strings.Contains(name, "/"):
		return errors.New("posix name must not contain '/'")
	case name == "." || name == "..":
		return fmt.Errorf("posix name must not be %q", name)
	case strings.IndexByte(name, 0) >= 0:
		return errors.New("posix name must not contain NUL")
	case len(name) > maxPOSIXName:
		return fmt.Errorf("posix name is %d bytes long, limit %d", len(name), maxPOSIXName)
	}
	return nil
}

func parseFile(rest string) (Spec, error) {
	if err := checkPath("file path", rest); err != nil {
		return Spec{}, err
	}
	return Spec{Backend: BackendFile, Path: rest}, nil
}

func checkPath(what, p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%s is empty", what)
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("%s must not contain NUL", what)
	case len(p) > maxPath:
		return fmt.Errorf("%s is %d bytes long, limit %d", what, len(p), maxPath)
	}
	return nil
}

func parseSysV(rest string) (Spec, error) {
	if ftok, ok := strings.CutPrefix(rest, "ftok:"); ok {
		// The path may itself contain ':', so the id is after the last one.
		i := strings.LastIndexByte(ftok, ':')
		if i < 0 {
			return Spec{}, errors.New("sysv ftok wants ftok:PATH:ID")
		}
		path, idStr := ftok[:i], ftok[i+1:]
		if err := checkPath("sysv ftok path", path); err != nil {
			return Spec{}, err
		}
		if !allDigits(idStr) {
			return Spec{}, fmt.Errorf("sysv ftok id %q: not a decimal number", idStr)
		}
		id, err := strconv.Atoi(idStr)
		if err != nil || id < 1 || id > 255 {
			// ftok(3): proj_id must be nonzero, and only its low 8 bits count.
			return Spec{}, fmt.Errorf("sysv ftok id %q: want 1..255", idStr)
		}
		return Spec{Backend: BackendSysV, FtokPath: path, FtokID: uint8(id)}, nil
	}
	key, err := parseSysVKey(rest)
	if err != nil {
		return Spec{}, err
	}
	return Spec{Backend: BackendSysV, Key: key}, nil
}

func parseSysVKey(s string) (int32, error) {
	var v int64
	if hex, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		u, err := strconv.ParseUint(hex, 16, 32)
		if err != nil || hex == "" || hex[0] == '+' {
			if ne := (*strconv.NumError)(nil); errors.As(err, &ne) && ne.Err == strconv.ErrRange {
				return 0, fmt.Errorf("sysv key %q: more than 32 bits", s)
			}
			return 0, fmt.Errorf("sysv key %q: invalid hex", s)
		}
		v = int64(u)
	} else {
		if s == "" {
			return 0, errors.New("sysv key is empty (want 0xHEX, DECIMAL or ftok:PATH:ID)")
		}
		d, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("sysv key %q: invalid decimal (want 0xHEX, DECIMAL or ftok:PATH:ID)", s)
		}
		if d < -1<<31 || d > 1<<32-1 {
			return 0, fmt.Errorf("sysv key %q: does not fit in 32 bits", s)
		}
		v = d
	}
	key := int32(uint32(v)) // key_t is 32 bits; 0xffffffff is -1
	if key == unix.IPC_PRIVATE {
		return 0, fmt.Errorf("sysv key %q is IPC_PRIVATE, which cannot be opened by key", s)
	}
	return key, nil
}

func parseMemfd(rest string) (Spec, error) {
	switch {
	case rest == "":
		return Spec{}, errors.New("memfd name is empty")
	case strings.Contains(rest, "/"):
		// Not a kernel rule, but the name is matched against /proc/self/fd
		// links by Open; keep it one plain component.
		return Spec{}, errors.New("memfd name must not contain '/'")
	case strings.IndexByte(rest, 0) >= 0:
		return Spec{}, errors.New("memfd name must not contain NUL")
	case len(rest) > maxMemfdName:
		return Spec{}, fmt.Errorf("memfd name is %d bytes long, limit %d", len(rest), maxMemfdName)
	}
	return Spec{Backend: BackendMemfd, Name: rest}, nil
}

func parseFD(rest string) (Spec, error) {
	if !allDigits(rest) {
		return Spec{}, fmt.Errorf("fd %q: not a non-negative decimal number", rest)
	}
	n, err := strconv.ParseInt(rest, 10, 32)
	if err != nil {
		return Spec{}, fmt.Errorf("fd %q: out of range", rest)
	}
	return Spec{Backend: BackendFD, FD: int(n)}, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String returns the canonical spec string: ParseSpec(s.String()) == s for
// every Spec that ParseSpec returned. A Spec that names nothing valid
// returns a string ParseSpec rejects.
func (s Spec) String() string {
	switch s.Backend {
	case BackendPOSIX:
		return "posix:/" + s.Name
	case BackendFile:
		return "file:" + s.Path
	case BackendSysV:
		if s.FtokPath != "" {
			return "sysv:ftok:" + s.FtokPath + ":" + strconv.Itoa(int(s.FtokID))
		}
		return fmt.Sprintf("sysv:0x%x", uint32(s.Key))
	case BackendMemfd:
		return "memfd:" + s.Name
	case BackendFD:
		return "fd:" + strconv.Itoa(s.FD)
	}
	return "invalid:" + s.Backend.String()
}

// SysVKey returns the SysV IPC key a sysv spec names: Key, or the ftok key
// of FtokPath and FtokID (which needs FtokPath to exist).
func (s Spec) SysVKey() (int32, error) {
	if s.Backend != BackendSysV {
		return 0, fmt.Errorf("segment: %s is not a sysv spec", s)
	}
	if s.FtokPath == "" {
		return s.Key, nil
	}
	return Ftok(s.FtokPath, s.FtokID)
}

// Ftok computes the SysV IPC key for path and id exactly as glibc's ftok(3)
// does, so C programs calling ftok(path, id) meet the same segment:
//
//	(st_ino & 0xffff) | ((st_dev & 0xff) << 16) | (id << 24)
//
// The key depends on the file's inode and device, so recreating the file
// changes it.
func Ftok(path string, id uint8) (int32, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, &os.PathError{Op: "ftok", Path: path, Err: err}
	}
	k := uint32(st.Ino&0xffff) | uint32(st.Dev&0xff)<<16 | uint32(id)<<24
	return int32(k), nil
}
