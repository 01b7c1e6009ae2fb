package segment

import (
	"github.com/shmkit/shmkit/internal/shmerr"

	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Passing a segment over a Unix socket.
//
// Send writes one message: a fixed header (below) followed by the name
// bytes, with the segment's descriptor attached as SCM_RIGHTS. A SysV
// segment has no descriptor; its shmid travels in the header instead (any
// process with permission may attach a shmid).
//
//	off size field
//	  0    4 magic "SHMS"
//	  4    1 version (1)
//	  5    1 backend
//	  6    1 flags: 1 = read-only, 2 = descriptor attached
//	  7    1 ftok id (sysv ftok specs)
//	  8    8 size of the sender's mapping
//	 16    4 shmid (sysv)
//	 20    4 key (sysv)
//	 24    2 length of the name that follows
//	 26    2 reserved, zero
//	 28    n name: posix name, file path, memfd name, or ftok path
//
// Integers are little-endian. The receiver trusts none of it: the spec it
// rebuilds is validated like a parsed one, the real size comes from fstat
// (IPC_STAT for sysv) and must be at least the advertised size.

const (
	msgMagic      = "SHMS"
	msgVersion    = 1
	msgHeaderLen  = 28
	msgMaxName    = maxPath
	msgFlagRO     = 1
	msgFlagHasFD  = 2
	msgMaxRecvFDs = 8 // room for a misbehaving sender's extras, which we close
)

// Send passes s to the process at the other end of conn, which attaches it
// with Receive. s stays open and usable here; the receiver gets its own
// descriptor (or its own attach, for sysv). Send may be called concurrently
// with other uses of s, but not concurrently with Close.
func Send(conn *net.UnixConn, s *Segment) error {
	s.mu.Lock()
	closed := s.closed
	size := len(s.data)
	s.mu.Unlock()
	if closed {
		return fmt.Errorf("segment: send %s: %w", s.spec, fs.ErrClosed)
	}
	sp := s.spec
	var name string
	var hdr [msgHeaderLen]byte
	copy(hdr[0:4], msgMagic)
	hdr[4] = msgVersion
	hdr[5] = byte(sp.Backend)
	if s.readOnly {
		hdr[6] |= msgFlagRO
	}
	binary.LittleEndian.PutUint64(hdr[8:], uint64(size))
	var oob []byte
	switch sp.Backend {
	case BackendPOSIX, BackendMemfd:
		name = sp.Name
	case BackendFile:
		name = sp.Path
	case BackendSysV:
		name = sp.FtokPath
		hdr[7] = sp.FtokID
		var desc unix.SysvShmDesc
		if _, err := unix.SysvShmCtl(s.shmID, unix.IPC_STAT, &desc); err != nil {
			return pathErr("send", sp, fmt.Errorf("shmctl IPC_STAT: %w", err))
		}
		binary.LittleEndian.PutUint32(hdr[16:], uint32(int32(s.shmID)))
		binary.LittleEndian.PutUint32(hdr[20:], uint32(desc.Perm.Key))
	}
	if s.file != nil {
		hdr[6] |= msgFlagHasFD
		oob = unix.UnixRights(int(s.file.Fd()))
	}
	binary.LittleEndian.PutUint16(hdr[24:], uint16(len(name)))
	msg := append(hdr[:], name...)
	n, _, err := conn.WriteMsgUnix(msg, oob, nil)
	if err == nil && n < len(msg) {
		// A stream socket may take part of the message; the descriptor went
		// with the first byte, the rest follows as plain data.
		_, err = conn.Write(msg[n:])
	}
	if err != nil {
		return pathErr("send", sp, err)
	}
	return nil
}

// Receive attaches a segment sent by Send on conn. It blocks until a
// message arrives (use conn.SetReadDeadline to bound it).
//
// The received segment's Spec is the sender's for posix, file, memfd and
// sysv (so Open by that spec also works here: by name, or for memfd because
// this process now holds the memfd), and "fd:N" with the received
// descriptor for a segment the sender had attached by descriptor. The
// mapping covers the object's real size. A segment the sender held
// read-only is read-only here too, whatever opts say.
//
// Receive works on stream ("unix") connections, reading exactly one
// message's bytes, and on "unixpacket"/"unixgram" connections.
func Receive(conn *net.UnixConn, opts ...Option) (*Segment, error) {
	o := buildOptions(opts)
	stream, err := isStream(conn)
	if err != nil {
		return nil, fmt.Errorf("segment: receive: %w", err)
	}
	bufLen := msgHeaderLen
	if !stream {
		bufLen += msgMaxName // a datagram must be read whole
	}
	buf := make([]byte, bufLen)
	oob := make([]byte, unix.CmsgSpace(4*msgMaxRecvFDs))
	n, oobn, flags, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("segment: receive: %w", err)
	}
	fds, fdErr := parseRights(oob[:oobn])
	// From here on every descriptor we got is ours to close unless a
	// Segment takes it.
	closeFDs := func(keep int) {
		for _, fd := range fds {
			if fd != keep {
				unix.Close(fd)
			}
		}
	}
	if fdErr != nil {
		closeFDs(-1)
		return nil, fmt.Errorf("segment: receive: %w", fdErr)
	}
	if flags&unix.MSG_CTRUNC != 0 {
		closeFDs(-1)
		return nil, fmt.Errorf("segment: receive: control message truncated (sender attached too many descriptors)")
	}
	if stream && n > 0 && n < msgHeaderLen {
		var m int
		m, err = io.ReadFull(conn, buf[n:msgHeaderLen])
		n += m
	}
	if err != nil || n < msgHeaderLen {
		closeFDs(-1)
		return nil, fmt.Errorf("segment: receive: short message (%d bytes): %w", n, errors.Join(err, io.ErrUnexpectedEOF))
	}
	hdr := buf[:msgHeaderLen]
	nameLen := int(binary.LittleEndian.Uint16(hdr[24:]))
	if string(hdr[0:4]) != msgMagic || hdr[4] != msgVersion || nameLen > msgMaxName {
		closeFDs(-1)
		return nil, fmt.Errorf("segment: receive: not a segment message (magic %q, version %d, name length %d)", hdr[0:4], hdr[4], nameLen)
	}
	var name []byte
	if stream {
		name = make([]byte, nameLen)
		if _, err := io.ReadFull(conn, name); err != nil {
			closeFDs(-1)
			return nil, fmt.Errorf("segment: receive: name: %w", err)
		}
	} else {
		if n != msgHeaderLen+nameLen {
			closeFDs(-1)
			return nil, fmt.Errorf("segment: receive: message is %d bytes, header says %d", n, msgHeaderLen+nameLen)
		}
		name = buf[msgHeaderLen:n]
	}

	sp, err := receivedSpec(hdr, string(name))
	if err != nil {
		closeFDs(-1)
		return nil, fmt.Errorf("segment: receive: %w", err)
	}
	if hdr[6]&msgFlagRO != 0 {
		o.readOnly = true
	}
	advertised := binary.LittleEndian.Uint64(hdr[8:])
	hasFD := hdr[6]&msgFlagHasFD != 0
	if sp.Backend == BackendSysV {
		closeFDs(-1)
		if hasFD || len(fds) != 0 {
			return nil, shmerr.WrapOp("segment", "receive", sp.String(), fmt.Errorf("a sysv segment came with a descriptor"))
		}
		return receiveSysV(sp, hdr, advertised, o)
	}
	if !hasFD || len(fds) != 1 {
		closeFDs(-1)
		return nil, shmerr.WrapOp("segment", "receive", sp.String(), fmt.Errorf("want exactly 1 descriptor, got %d", len(fds)))
	}
	fd := fds[0]
	if sp.Backend == BackendFD {
		sp.FD = fd
	}
	f := os.NewFile(uintptr(fd), sp.String())
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil && fl&unix.O_ACCMODE == unix.O_RDONLY {
		o.readOnly = true
	}
	// A descriptor is sealed or refused (see checkSeals), except one that is
	// the very object its posix or file name names here: a peer can
	// truncate that by name whatever we do, so refusing its descriptor
	// would protect nothing; it gets exactly the checks Open by that name
	// does. A memfd claiming to be a posix object fails the comparison.
	sealed := true
	if sp.Backend == BackendPOSIX || sp.Backend == BackendFile {
		var st unix.Stat_t
		sealed = unix.Fstat(fd, &st) != nil || !sameObject(&st, objectPath(sp))
	}
	size, err := admit(sp, f, o, "receive", sealed)
	if err == nil && uint64(size) < advertised {
		err = pathErr("receive", sp, fmt.Errorf("object is %d bytes, sender mapped %d: %w", size, advertised, fs.ErrInvalid))
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	seg, err := mapFile(sp, f, size, o, "receive")
	if err != nil {
		f.Close()
		return nil, err
	}
	return seg, nil
}

// receivedSpec rebuilds the sender's spec and validates it as if parsed.
func receivedSpec(hdr []byte, name string) (Spec, error) {
	b := Backend(hdr[5])
	var s string
	switch b {
	case BackendPOSIX:
		s = "posix:/" + name
	case BackendFile:
		s = "file:" + name
	case BackendMemfd:
		s = "memfd:" + name
	case BackendFD:
		return Spec{Backend: BackendFD}, nil
	case BackendSysV:
		if name != "" {
			s = "sysv:ftok:" + name + ":" + strconv.Itoa(int(hdr[7]))
		} else {
			s = fmt.Sprintf("sysv:0x%x", binary.LittleEndian.Uint32(hdr[20:]))
		}
	default:
		return Spec{}, fmt.Errorf("unknown backend %d", hdr[5])
	}
	return ParseSpec(s)
}

func receiveSysV(sp Spec, hdr []byte, advertised uint64, o options) (*Segment, error) {
	id := int(int32(binary.LittleEndian.Uint32(hdr[16:])))
	key := int32(binary.LittleEndian.Uint32(hdr[20:]))
	var desc unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &desc); err != nil {
		return nil, pathErr("receive", sp, fmt.Errorf("shmctl IPC_STAT of shmid %d: %w", id, err))
	}
	// After IPC_RMID the kernel shows the key as IPC_PRIVATE; a still
	// attached segment can be passed on, so allow that.
	if desc.Perm.Key != key && desc.Perm.Key != unix.IPC_PRIVATE {
		return nil, pathErr("receive", sp, fmt.Errorf("shmid %d has key %#x, sender said %#x: %w", id, uint32(desc.Perm.Key), uint32(key), fs.ErrInvalid))
	}
	if desc.Segsz < advertised {
		return nil, pathErr("receive", sp, fmt.Errorf("shmid %d is %d bytes, sender mapped %d: %w", id, desc.Segsz, advertised, fs.ErrInvalid))
	}
	return attachSysV(sp, id, o, "receive")
}

func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("control message: %w", err)
	}
	var fds []int
	var errs []error
	for i := range msgs {
		got, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			errs = append(errs, err) // not SCM_RIGHTS (credentials?): ignore the message but say so
			continue
		}
		fds = append(fds, got...)
	}
	if len(fds) == 0 && len(errs) > 0 {
		return nil, fmt.Errorf("control message: %w", errors.Join(errs...))
	}
	return fds, nil
}

// isStream reports whether conn is a SOCK_STREAM socket.
func isStream(conn *net.UnixConn) (bool, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return false, err
	}
	var typ int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		typ, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
	}); err != nil {
		return false, err
	}
	if serr != nil {
		return false, fmt.Errorf("getsockopt SO_TYPE: %w", serr)
	}
	return typ == unix.SOCK_STREAM, nil
}
