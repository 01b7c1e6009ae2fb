package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shmkit/shmkit/internal/proc"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	"golang.org/x/sys/unix"
)

// Report is everything shmctl learned about one object. Its JSON encoding
// is the --json output of ls and stat; field names are part of the tool's
// interface.
type Report struct {
	Backend string `json:"backend"`
	Spec    string `json:"spec"`
	Name    string `json:"name,omitempty"`
	Path    string `json:"path,omitempty"`
	Size    int64  `json:"size"`
	// Shmkit is false for objects that are not shmkit segments (shown with
	// ls --all only, and never opened for writing).
	Shmkit bool `json:"shmkit"`
	// Status is one of: ok, idle (valid, its creator has exited and no
	// process maps it: normal for a posix, file or sysv segment that keeps
	// data between runs), stale, initializing, corrupt, removed (a SysV
	// segment marked for deletion that processes still have attached),
	// foreign, error.
	Status string `json:"status"`
	// Note explains an idle or removed segment in words.
	Note string `json:"note,omitempty"`
	// Error is the failing check for corrupt segments, or why the object
	// could not be read.
	Error   string      `json:"error,omitempty"`
	Header  *HeaderInfo `json:"header,omitempty"`
	Creator *ProcInfo   `json:"creator,omitempty"`
	// Users are the live processes (other than shmctl) that map the object
	// or hold a descriptor of it.
	Users []int32    `json:"users"`
	SysV  *SysVInfo  `json:"sysv,omitempty"`
	Live  *Live      `json:"live,omitempty"`
	Stale []Problem  `json:"problems,omitempty"`
	Valid *bool      `json:"valid,omitempty"`
	MemFD *MemFDInfo `json:"memfd,omitempty"`

	kind layout.Kind
}

// HeaderInfo is the decoded segment header.
type HeaderInfo struct {
	Version     uint32       `json:"version"`
	Kind        string       `json:"kind"`
	KindCode    uint32       `json:"kind_code"`
	State       string       `json:"state"`
	Flags       uint32       `json:"flags"`
	Capacity    uint64       `json:"capacity"`
	SegmentSize uint64       `json:"segment_size"`
	HeaderSize  uint32       `json:"header_size"`
	Created     *time.Time   `json:"created,omitempty"`
	Types       []TypeInfo   `json:"types"`
	TypeDescOff uint64       `json:"type_desc_off"`
	TypeDescLen uint64       `json:"type_desc_len"`
	Regions     []RegionInfo `json:"regions"`
	Params      []uint64     `json:"params"`
	Checksum    string       `json:"checksum"`
}

// TypeInfo is one stored element type.
type TypeInfo struct {
	Name        string `json:"name,omitempty"`
	Layout      string `json:"layout,omitempty"`
	Fingerprint string `json:"fingerprint"`
	Size        uint64 `json:"size"`
	Align       uint64 `json:"align"`
}

// RegionInfo locates one region.
type RegionInfo struct {
	Off  uint64 `json:"off"`
	Size uint64 `json:"size"`
}

// ProcInfo is a process recorded in shared memory and whether it still runs.
type ProcInfo struct {
	PID   int32  `json:"pid"`
	Start uint64 `json:"start"`
	Alive bool   `json:"alive"`
}

func procInfo(pid int32, start uint64) *ProcInfo {
	return &ProcInfo{PID: pid, Start: start, Alive: proc.Alive(proc.ID{PID: pid, Start: start})}
}

// SysVInfo is what /proc/sysvipc/shm says about a SysV segment.
type SysVInfo struct {
	Key      string  `json:"key"`
	ShmID    int     `json:"shmid"`
	Perms    string  `json:"perms"`
	CPID     int32   `json:"cpid"`
	LPID     int32   `json:"lpid"`
	Nattch   uint64  `json:"nattch"`
	Attached []int32 `json:"attached"`
	// Removed: marked for deletion (IPC_RMID, "ipcrm -m"); the kernel frees
	// it when the last process detaches, and no key reaches it any more.
	Removed bool `json:"removed,omitempty"`
}

// MemFDInfo lists the descriptors through which a memfd was found.
type MemFDInfo struct {
	Holders []string `json:"holders"` // /proc/PID/fd/N
}

// Problem is one piece of stale state.
type Problem struct {
	// What: half-initialized, dead-role, dead-lock-owner,
	// dead-participant.
	What   string `json:"what"`
	Detail string `json:"detail"`
	// Fixable says doctor --fix can repair it (by the owning package's
	// recovery, or by removing a segment that can never become ready).
	Fixable bool `json:"fixable"`
}

// Live is the per-kind live state of a segment, read without locking: a
// snapshot that may be torn across fields while peers run.
type Live struct {
	Len    *uint64 `json:"len,omitempty"`
	Head   *uint64 `json:"head,omitempty"`
	Tail   *uint64 `json:"tail,omitempty"`
	In     *uint64 `json:"in_total,omitempty"`  // items ever added
	Out    *uint64 `json:"out_total,omitempty"` // items ever removed
	Closed *bool   `json:"closed,omitempty"`
	// SyncBackend is how a queue synchronizes: futex or sysv.
	SyncBackend string    `json:"sync_backend,omitempty"`
	Waiters     []Counter `json:"waiters,omitempty"`
	Owners      []Owner   `json:"owners,omitempty"`
	Details     []Counter `json:"details,omitempty"`
	Problems    []Problem `json:"-"`
}

// Counter is a named number.
type Counter struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
}

// Owner is a role or lock holder recorded in the segment.
type Owner struct {
	Role string `json:"role"`
	ProcInfo
}

func u64(v uint64) *uint64 { return &v }

// stateName names a header state word.
func stateName(st uint32) string {
	switch st {
	case layout.StateZero:
		return "zero"
	case layout.StateInitializing:
		return "initializing"
	case layout.StateReady:
		return "ready"
	}
	return fmt.Sprintf("unknown(%#x)", st)
}

// headRead is how much of an object shmctl copies to decode it: the header
// and, normally, the type descriptions after it.
const headRead = 64 << 10

// handle is an object opened read-only for inspection.
type handle struct {
	head       []byte // up to headRead bytes from offset 0, copied
	size       int64
	id         fileID
	layoutSpec string // spec for layout.Open that reaches this same object
	spec       string // the spec the user knows it by
	close      func()
}

// name returns err's text with the private descriptor spec shmctl opened
// the object through (fd:N) replaced by the spec the user knows.
func (h *handle) name(err error) string {
	if h.layoutSpec == h.spec {
		return err.Error()
	}
	return strings.ReplaceAll(err.Error(), h.layoutSpec+":", h.spec+":")
}

// openRead opens t read-only and copies its first bytes. fd-based objects
// are read with pread, which cannot fault; SysV segments must be attached
// (read-only), which makes the kernel record shmctl as their last pid.
func openRead(t *target) (*handle, error) {
	if t.Backend == "sysv" {
		if t.SysV.Key == 0 {
			return nil, errors.New("IPC_PRIVATE segment: no key to open it by")
		}
		raw, err := segment.Open(t.Spec, segment.ReadOnly(), segment.WithTrustAnyOwner())
		if err != nil {
			return nil, err
		}
		b := raw.Bytes()
		h := &handle{head: bytes.Clone(b[:min(len(b), headRead)]), size: int64(len(b)), layoutSpec: t.Spec, spec: t.Spec}
		h.close = func() { _ = raw.Close() }
		return h, nil
	}
	path := t.Path
	// O_NONBLOCK: a FIFO named on the command line must not hang us; the
	// fstat below then refuses it.
	flags := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK
	if t.Backend == "posix" || t.Backend == "file" {
		flags |= unix.O_NOFOLLOW // like segment.Open: never follow a planted link
	}
	fd, err := unix.Open(path, flags, 0)
	if err != nil {
		return nil, deniedErr(path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	n := min(st.Size, headRead)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, err
	}
	h := &handle{head: buf, size: st.Size, id: fileIDOf(&st), spec: t.Spec, close: func() { f.Close() }}
	switch t.Backend {
	case "posix", "file":
		h.layoutSpec = t.Spec
	default:
		h.layoutSpec = "fd:" + strconv.Itoa(fd)
	}
	return h, nil
}

// deniedErr is the error of opening path for reading; for EACCES it names
// the owner and mode, and the read access shmctl needs.
func deniedErr(path string, err error) error {
	var st unix.Stat_t
	if !errors.Is(err, unix.EACCES) || unix.Lstat(path, &st) != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	return &os.PathError{Op: "open", Path: path, Err: fmt.Errorf("owned by uid %d (group %d), mode %04o: uid %d needs read access: %w",
		st.Uid, st.Gid, st.Mode&0o7777, os.Geteuid(), err)}
}

// inspect builds the report for t. It never writes to the object and never
// panics: a fault while reading a mapping (a peer shrank the object) is
// reported as an error.
func inspect(t *target, ps *procScan) (r *Report) {
	r = &Report{Backend: t.Backend, Spec: t.Spec, Name: t.Name, Path: t.Path, Users: []int32{}}
	if t.Backend == "memfd" {
		r.MemFD = &MemFDInfo{}
		for _, m := range t.Holders {
			r.MemFD.Holders = append(r.MemFD.Holders, fmt.Sprintf("/proc/%d/fd/%d", m.PID, m.FD))
		}
	}
	if t.SysV != nil {
		e := t.SysV
		r.Size = int64(e.Size)
		r.SysV = &SysVInfo{
			Key: fmt.Sprintf("0x%08x", uint32(e.Key)), ShmID: e.ShmID, Perms: fmt.Sprintf("%#o", e.Perms),
			CPID: e.CPID, LPID: e.LPID, Nattch: e.Nattch, Attached: ps.sysvAttached(e.ShmID),
			Removed: e.Removed(),
		}
		r.Users = r.SysV.Attached
		if e.Removed() {
			inspectRemovedSysV(r, e)
			return r
		}
		if e.Size < uint64(layout.HeaderSize) || e.Key == 0 {
			r.Status = "foreign"
			return r
		}
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			r.Status, r.Error = "error", fmt.Sprintf("fault while reading the segment (did a peer shrink it?): %v", p)
		}
	}()
	h, err := openRead(t)
	if err != nil {
		r.Status, r.Error = "error", err.Error()
		return r
	}
	defer h.close()
	r.Size = h.size
	if t.SysV == nil {
		path := ""
		if t.Backend == "posix" || t.Backend == "file" {
			path = t.Path
		}
		r.Users = ps.usersOf(h.id, path)
	}
	decodeHeader(r, h)
	if !r.Shmkit {
		return r
	}
	judge(r, t)
	return r
}

// decodeHeader classifies the object from its first bytes and, for a shmkit
// segment, decodes (layout.Peek) and validates (layout.Open) its header.
func decodeHeader(r *Report, h *handle) {
	hd, types, err := layout.Peek(h.head, int(h.size))
	if hd == nil {
		if errors.Is(err, layout.ErrTooSmall) && !errors.Is(err, layout.ErrBadMagic) {
			r.Shmkit, r.Status, r.Error = true, "corrupt", err.Error()
			return
		}
		r.Status, r.Error = "foreign", notShmkitDetail(err)
		return
	}
	fillHeader(r, hd, types)
	hi := r.Header
	if hd.State == layout.StateZero || hd.State == layout.StateInitializing {
		if errors.Is(err, layout.ErrNotReady) {
			r.Status = "initializing"
		} else {
			r.Status, r.Error = "corrupt", err.Error()
		}
		return
	}
	// Ready (or an unknown state word): let the library validate it
	// exactly as a program opening it would; Peek's verdict on the copied
	// head is the same, but Open names the segment and attaches it for the
	// live state.
	s, err := layout.Open(h.layoutSpec, layout.Expect{Kind: layout.KindAny},
		layout.WithSegment(segment.ReadOnly(), segment.WithTrustAnyOwner()), layout.WithInitTimeout(0))
	valid := err == nil
	r.Valid = &valid
	if err != nil {
		r.Status, r.Error = "corrupt", h.name(err)
		return
	}
	defer s.Close()
	for i, ti := range s.Types() {
		if i < len(hi.Types) {
			hi.Types[i].Name, hi.Types[i].Layout = ti.Name, ti.Layout
		}
	}
	r.Status = "ok"
	if p, ok := probes[s.Header().Kind]; ok && p.hasLive() {
		live, err := p.readLive(s, h.layoutSpec)
		if err != nil {
			valid = false
			r.Status, r.Error = "corrupt", h.name(err)
			return
		}
		r.Live = live
	}
}

// fillHeader records what a decoded (not necessarily valid) header claims.
func fillHeader(r *Report, hd *layout.Header, types []layout.TypeInfo) {
	r.Shmkit = true
	r.kind = hd.Kind
	r.Creator = procInfo(hd.Creator.PID, hd.Creator.Start)
	hi := &HeaderInfo{
		Version: hd.Version, Kind: hd.Kind.String(), KindCode: uint32(hd.Kind), State: stateName(hd.State),
		Flags: hd.Flags, Capacity: hd.Capacity, SegmentSize: hd.SegmentSize, HeaderSize: hd.HeaderSize,
		TypeDescOff: hd.TypeDescOff, TypeDescLen: hd.TypeDescLen, Params: hd.Params[:],
		Checksum: fmt.Sprintf("%#016x", hd.Checksum),
	}
	if hd.CreatedUnix != 0 {
		c := time.Unix(0, hd.CreatedUnix).UTC()
		hi.Created = &c
	}
	for i := range min(hd.NumTypes, layout.MaxTypes) {
		tr := hd.Types[i]
		ti := TypeInfo{Fingerprint: fmt.Sprintf("%#016x", tr.Fingerprint), Size: tr.Size, Align: tr.Align}
		if int(i) < len(types) {
			// Unverified until layout.Open succeeds; shown so that even a
			// corrupt segment says what it claims to hold.
			ti.Name, ti.Layout = types[i].Name, types[i].Layout
		}
		hi.Types = append(hi.Types, ti)
	}
	for i := range min(hd.NumRegions, layout.MaxRegions) {
		hi.Regions = append(hi.Regions, RegionInfo{Off: hd.Regions[i].Off, Size: hd.Regions[i].Size})
	}
	r.Header = hi
}

// inspectRemovedSysV describes a SysV segment marked for deletion (IPC_RMID)
// that processes still have attached. No key reaches it any more, so no
// program can open it; shmctl attaches it read-only by shmid to say what
// it holds, and only decodes its header (layout.Open needs a key).
func inspectRemovedSysV(r *Report, e *sysvEntry) {
	r.Status = "removed"
	r.Note = fmt.Sprintf("removed (IPC_RMID) while still attached by %d process(es); the kernel frees it when the last one detaches", e.Nattch)
	if e.Size < uint64(layout.HeaderSize) {
		return
	}
	data, err := unix.SysvShmAttach(e.ShmID, 0, unix.SHM_RDONLY)
	if err != nil {
		r.Error = fmt.Sprintf("shmat shmid %d: %v", e.ShmID, err)
		return
	}
	head := bytes.Clone(data[:min(len(data), headRead)])
	size := len(data)
	_ = unix.SysvShmDetach(data)
	hd, types, err := layout.Peek(head, size)
	if hd == nil {
		return // not a shmkit segment: listed with --all only
	}
	r.Shmkit = true
	fillHeader(r, hd, types)
	if err != nil {
		r.Error = err.Error()
	}
}

// notShmkitDetail is what layout says about an object that is not a shmkit
// segment (its first bytes), without the sentinel's own words.
func notShmkitDetail(err error) string {
	if err == nil {
		return ""
	}
	return strings.TrimPrefix(err.Error(), layout.ErrBadMagic.Error()+": ")
}

// judge decides whether a shmkit segment is stale, and why.
func judge(r *Report, t *target) {
	switch r.Status {
	case "initializing":
		if !r.Creator.Alive {
			r.Stale = append(r.Stale, Problem{
				What:    "half-initialized",
				Detail:  fmt.Sprintf("creator pid %d died before finishing initialization; the segment can never become ready", r.Creator.PID),
				Fixable: t.Backend == "posix" || t.Backend == "file" || t.Backend == "sysv",
			})
		}
	case "ok":
		if r.Live != nil {
			r.Stale = append(r.Stale, r.Live.Problems...)
		}
		attached := len(r.Users) > 0 || (r.SysV != nil && r.SysV.Nattch > 0)
		if len(r.Stale) == 0 && !r.Creator.Alive && !attached {
			// Finished and unmapped: a posix, file or sysv segment outlives
			// its processes on purpose, to keep the data for the next run.
			// Nothing is wrong; only a creator that died during
			// initialization leaves a broken segment (half-initialized).
			r.Status = "idle"
			r.Note = fmt.Sprintf("no process has it mapped; its creator pid %d has exited (the data stays until 'shmctl rm %s')", r.Creator.PID, r.Spec)
		}
	}
	if len(r.Stale) > 0 && (r.Status == "ok" || r.Status == "initializing") {
		r.Status = "stale"
	}
}

// inspectAll inspects targets in order.
func inspectAll(ts []*target, ps *procScan) []*Report {
	out := make([]*Report, 0, len(ts))
	for _, t := range ts {
		out = append(out, inspect(t, ps))
	}
	slices.SortStableFunc(out, func(a, b *Report) int {
		if c := backendOrder(a.Backend) - backendOrder(b.Backend); c != 0 {
			return c
		}
		if a.Spec < b.Spec {
			return -1
		}
		if a.Spec > b.Spec {
			return 1
		}
		return 0
	})
	return out
}

func backendOrder(b string) int {
	return slices.Index([]string{"posix", "file", "sysv", "memfd", "fd"}, b)
}
