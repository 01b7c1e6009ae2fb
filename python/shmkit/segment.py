"""Opening a shmkit segment and validating its header, as Go's layout.Open
does: nothing read from the segment is trusted.

Segment specs (the Go spellings):

    posix:/NAME   /dev/shm/NAME (what Go's shm_open-style backend creates)
    file:PATH     a regular file
    fd:N          an inherited descriptor (a memfd, say)

sysv:KEY and memfd:NAME (which only the creating process can name) are not
supported from Python: pass a memfd as fd:N instead.

Resource tracker: this module never uses multiprocessing.shared_memory.
It opens /dev/shm/NAME with os.open and maps it with mmap, which registers
nothing with multiprocessing's resource tracker, so Python never unlinks a
segment it merely opened (before 3.13, SharedMemory(name) registers every
segment it attaches and the tracker unlinks it when the process exits,
destroying it for the Go side; track=False only arrived in 3.13).
"""

from __future__ import annotations

import errno
import mmap
import os
import stat
import struct
import time
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from . import _xxhash
from .layout import Codec, LayoutError, ParsedLayout, parse_layout

__all__ = [
    "ShmkitError",
    "BadMagic",
    "VersionError",
    "Corrupt",
    "TooSmall",
    "NotReady",
    "TypeMismatch",
    "Untrusted",
    "Header",
    "TypeInfo",
    "Segment",
    "open_segment",
    "spec_path",
    "KIND_VALUE",
    "KIND_RING",
    "KIND_BYTERING",
    "KIND_QUEUE",
    "KIND_MAP",
    "KIND_BUS",
    "KIND_NAMES",
]


class ShmkitError(Exception):
    """Base of every shmkit error."""


class BadMagic(ShmkitError):
    """Not a shmkit segment."""


class VersionError(ShmkitError):
    """A format version this package cannot read."""


class Corrupt(ShmkitError):
    """Contents fail validation."""


class TooSmall(ShmkitError):
    """Smaller than its header or layout needs."""


class NotReady(ShmkitError):
    """Still being initialized, or its creator died doing so."""


class TypeMismatch(ShmkitError):
    """Another kind of structure, or another element type, than asked for."""


class Untrusted(ShmkitError, PermissionError):
    """Owned by a user other than us or root (see Go's segment trust rules)."""


MAGIC = b"SHMKIT\x00\x01"
FORMAT_VERSION = 1
LINE_SIZE = 128
PAGE_SIZE = 4096
MAX_TYPES = 2
MAX_REGIONS = 8
MAX_PARAMS = 8
MAX_TYPE_DESC = 64 << 10

STATE_ZERO = 0
STATE_INITIALIZING = 0x494E4954  # "INIT"
STATE_READY = 0x52454459  # "REDY"

KIND_VALUE, KIND_RING, KIND_BYTERING, KIND_QUEUE, KIND_MAP, KIND_BUS = 1, 2, 3, 4, 5, 6
KIND_NAMES = {0: "any", 1: "value", 2: "ring", 3: "bytering", 4: "queue", 5: "map", 6: "bus"}

# Header layout (layout/header.go, amd64 and arm64 alike: all fields are
# naturally aligned, no implicit padding).
_HDR = struct.Struct(
    "<8s"  # Magic                      0
    "I"  # Version                      8
    "I"  # HeaderSize                   12
    "I"  # Kind                         16
    "I"  # NumTypes                     20
    "I"  # NumRegions                   24
    "I"  # Flags                        28
    "Q"  # SegmentSize                  32
    "Q"  # Capacity                     40
    "i4x"  # Creator.PID (+pad)         48
    "Q"  # Creator.Start                56
    "q"  # CreatedUnix                  64
    "Q"  # TypeDescOff                  72
    "Q"  # TypeDescLen                  80
    "6Q"  # Types[2]{Fp, Size, Align}   88
    "8Q"  # Params[8]                   136
    "16Q"  # Regions[8]{Off, Size}      200
    "Q"  # Checksum                     328
    "I"  # State                        336
)
OFF_CHECKSUM = 328
OFF_STATE = 336
OFF_CREATOR = 48
HEADER_SIZE = 464  # 336 + 4 + (LineSize-4), Go's unsafe.Sizeof(Header{})
assert _HDR.size == OFF_STATE + 4


@dataclass
class TypeInfo:
    """One element type as the segment describes it."""

    name: str
    layout: str
    fingerprint: int
    size: int
    align: int
    _parsed: Optional[ParsedLayout] = None
    _codec: Optional[Codec] = None

    @property
    def parsed(self) -> ParsedLayout:
        if self._parsed is None:
            self._parsed = parse_layout(self.layout)
        return self._parsed

    @property
    def codec(self) -> Codec:
        """The struct codec of the type (raises Corrupt if its layout string
        does not describe a type of the recorded size)."""
        if self._codec is None:
            try:
                c = Codec(self.parsed)
            except LayoutError as e:
                raise Corrupt(f"type {self.name}: {e}") from None
            if c.size != self.size:
                raise Corrupt(f"type {self.name}: layout size {c.size}, header says {self.size}")
            self._codec = c
        return self._codec

    @property
    def struct_format(self) -> str:
        """The struct module format of one element (explicit padding)."""
        return self.codec.format

    def numpy_dtype(self):  # -> numpy.dtype
        """The structured numpy.dtype of one element (needs numpy)."""
        from .layout import numpy_dtype

        return numpy_dtype(self.parsed)


@dataclass
class Header:
    """A validated private copy of a segment header."""

    magic: bytes
    version: int
    header_size: int
    kind: int
    num_types: int
    num_regions: int
    flags: int
    segment_size: int
    capacity: int
    creator_pid: int
    creator_start: int
    created_unix_ns: int
    type_desc_off: int
    type_desc_len: int
    types: List[Tuple[int, int, int]]  # (fingerprint, size, align)
    params: List[int]
    regions: List[Tuple[int, int]]  # (off, size)
    checksum: int
    state: int

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, f"kind({self.kind})")

    @classmethod
    def unpack(cls, b: bytes) -> "Header":
        v = _HDR.unpack_from(b, 0)
        t = v[14:20]
        r = v[28:44]
        return cls(
            magic=v[0],
            version=v[1],
            header_size=v[2],
            kind=v[3],
            num_types=v[4],
            num_regions=v[5],
            flags=v[6],
            segment_size=v[7],
            capacity=v[8],
            creator_pid=v[9],
            creator_start=v[10],
            created_unix_ns=v[11],
            type_desc_off=v[12],
            type_desc_len=v[13],
            types=[tuple(t[i : i + 3]) for i in range(0, 6, 3)],  # type: ignore[misc]
            params=list(v[20:28]),
            regions=[tuple(r[i : i + 2]) for i in range(0, 16, 2)],  # type: ignore[misc]
            checksum=v[44],
            state=v[45],
        )


def header_checksum(hdr_bytes: bytes, desc: bytes) -> int:
    """xxhash64 of the header's first 328 bytes (everything before the
    Checksum field) followed by the type descriptions."""
    return _xxhash.XXH64().update(hdr_bytes[:OFF_CHECKSUM]).update(desc).digest()


def _check_span(what: str, off: int, size: int, lo: int, hi: int, align: int) -> None:
    if off < lo or off % align != 0 or size > hi or off > hi - size:
        raise Corrupt(f"{what} at [{off}, +{size}) outside [{lo}, {hi}) or not {align}-aligned")


def validate(hdr_bytes: bytes, desc: bytes, object_size: int) -> Tuple[Header, List[TypeInfo]]:
    """Validate a private copy of a ready header and its type descriptions
    (Go's Header.Validate plus decodeTypeDescs). Raises a ShmkitError."""
    h = Header.unpack(hdr_bytes)
    if h.magic != MAGIC:
        raise BadMagic(f"first bytes are {h.magic.hex(' ')}")
    if h.version != FORMAT_VERSION:
        raise VersionError(f"segment has format {h.version}, this package reads {FORMAT_VERSION}")
    if len(desc) != h.type_desc_len:
        raise Corrupt(f"type descriptions at [{h.type_desc_off}, +{h.type_desc_len}) outside the {object_size}-byte object")
    got = header_checksum(hdr_bytes, desc)
    if got != h.checksum:
        raise Corrupt(f"header checksum {h.checksum:#x}, computed {got:#x}")
    if h.header_size != HEADER_SIZE:
        raise Corrupt(f"header size {h.header_size}, expected {HEADER_SIZE}")
    if h.kind not in KIND_NAMES or h.kind == 0:
        raise Corrupt(f"unknown kind {h.kind}")
    if h.num_types > MAX_TYPES or h.num_regions > MAX_REGIONS:
        raise Corrupt(f"{h.num_types} types, {h.num_regions} regions (max {MAX_TYPES}, {MAX_REGIONS})")
    if h.segment_size > object_size:
        raise TooSmall(f"header says {h.segment_size} bytes, object has {object_size}")
    if h.segment_size < HEADER_SIZE:
        raise Corrupt(f"segment size {h.segment_size} below header size")
    _check_span("type descriptions", h.type_desc_off, h.type_desc_len, HEADER_SIZE, h.segment_size, 8)
    end = h.type_desc_off + h.type_desc_len
    for i in range(h.num_regions):
        off, size = h.regions[i]
        _check_span(f"region {i}", off, size, end, h.segment_size, LINE_SIZE)
        end = off + size
    for i in range(h.num_types):
        _, size, align = h.types[i]
        if align == 0 or align & (align - 1) or align > PAGE_SIZE or size % align:
            raise Corrupt(f"type {i} has size {size}, align {align}")
    types = _decode_type_descs(desc, h)
    return h, types


def _decode_type_descs(b: bytes, h: Header) -> List[TypeInfo]:
    out: List[TypeInfo] = []
    for i in range(h.num_types):
        if len(b) < 8:
            raise Corrupt(f"type description {i} truncated")
        nl, ll = struct.unpack_from("<II", b, 0)
        b = b[8:]
        if nl > len(b) or ll > len(b) - nl:
            raise Corrupt(f"type description {i} lengths {nl}+{ll} exceed {len(b)} bytes")
        fp, size, align = h.types[i]
        ti = TypeInfo(
            name=b[:nl].decode("utf-8", "replace"),
            layout=b[nl : nl + ll].decode("utf-8", "replace"),
            fingerprint=fp,
            size=size,
            align=align,
        )
        if _xxhash.xxh64(b[nl : nl + ll]) != fp:
            raise Corrupt(f"type description {i} does not match its fingerprint {fp:#x}")
        b = b[nl + ll :]
        out.append(ti)
    return out


# ---- specs ----


def spec_path(spec: str) -> Tuple[str, Optional[int]]:
    """Resolve a spec to (path, fd): the path to open, or an fd to dup."""
    backend, sep, rest = spec.partition(":")
    if not sep:
        raise ValueError(f"segment spec {spec!r}: want BACKEND:NAME (posix:/name, file:/path, fd:N)")
    if backend == "posix":
        name = rest[1:] if rest.startswith("/") else rest
        if not name:
            raise ValueError(f"segment spec {spec!r}: posix name is empty")
        if "/" in name:
            raise ValueError(f"segment spec {spec!r}: posix name must not contain '/'")
        if name in (".", ".."):
            raise ValueError(f"segment spec {spec!r}: posix name must not be {name!r}")
        if "\x00" in name or len(name.encode()) > 255:
            raise ValueError(f"segment spec {spec!r}: bad posix name")
        return "/dev/shm/" + name, None
    if backend == "file":
        if not rest or "\x00" in rest:
            raise ValueError(f"segment spec {spec!r}: bad file path")
        return rest, None
    if backend == "fd":
        try:
            fd = int(rest, 10)
        except ValueError:
            raise ValueError(f"segment spec {spec!r}: fd wants a decimal number") from None
        if fd < 0:
            raise ValueError(f"segment spec {spec!r}: negative fd")
        return "", fd
    if backend in ("sysv", "memfd"):
        raise NotImplementedError(
            f"segment spec {spec!r}: the {backend} backend is not supported from Python "
            "(use posix:/name or file:/path; pass a memfd as fd:N)"
        )
    raise ValueError(f"segment spec {spec!r}: unknown backend {backend!r}")


# ---- liveness (internal/proc's rules: dead only on definite evidence) ----

START_BITS = 42
START_MASK = (1 << START_BITS) - 1


def _proc_stat(pid: int) -> Optional[Tuple[str, int]]:
    """(state, start time) from /proc/PID/stat, or None when unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            b = f.read()
    except OSError:
        return None
    r = b.rfind(b")")
    if r < 0:
        return None
    fields = b[r + 2 :].split()
    try:
        return fields[0].decode(), int(fields[19])
    except (IndexError, ValueError):
        return None


def proc_dead(pid: int, start: int) -> bool:
    """True only when the process (pid, start time) certainly no longer runs."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    st = _proc_stat(pid)
    if st is None:
        return False
    state, start_now = st
    if state in ("Z", "X"):
        return True
    return start != 0 and (start_now & START_MASK) != (start & START_MASK)


def self_word() -> int:
    """This process's proc word (pid << 42 | start time low bits), as Go's
    proc.Self().Word()."""
    pid = os.getpid()
    st = _proc_stat(pid)
    start = st[1] if st else 0
    return (pid << START_BITS) | (start & START_MASK)


def decode_word(w: int) -> Tuple[int, int]:
    """(pid, start) of a proc word."""
    return w >> START_BITS, w & START_MASK


# ---- segments ----


class Segment:
    """An attached segment with a validated header.

    mem is the shared mapping (an mmap); region(i) returns (offset, size) of
    region i inside it, checked against the mapping. Close unmaps.
    """

    def __init__(self, spec: str, mm: mmap.mmap, size: int, header: Header, types: List[TypeInfo], writable: bool) -> None:
        self.spec = spec
        self.mem = mm
        self.size = size
        self.header = header
        self.types = types
        self.writable = writable
        self._view = memoryview(mm)
        # Word views: indexing a 'Q' or 'I' memoryview is one aligned native
        # load in CPython (a fixed-size memcpy), never a byte-by-byte read.
        self._q = self._view[: size // 8 * 8].cast("Q")
        self._i = self._view[: size // 4 * 4].cast("I")

    @property
    def kind(self) -> int:
        return self.header.kind

    def region(self, i: int) -> Tuple[int, int]:
        if not 0 <= i < self.header.num_regions:
            raise Corrupt(f"{self.spec}: no region {i}")
        return self.header.regions[i]

    def u32(self, off: int) -> int:
        """The 4-aligned 32-bit word at off: one load."""
        return self._i[off >> 2]

    def u64(self, off: int) -> int:
        """The 8-aligned 64-bit word at off: one load (a plain load: see
        the package notes on memory ordering)."""
        return self._q[off >> 3]

    def copy(self, off: int, n: int) -> bytes:
        return bytes(self._view[off : off + n])

    def close(self) -> None:
        """Unmap. Fails with BufferError while numpy views still use the
        mapping: drop them first."""
        if self._view is not None:
            self._q.release()
            self._i.release()
            self._view.release()
            self._view = None  # type: ignore[assignment]
        self.mem.close()

    def __enter__(self) -> "Segment":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<shmkit.Segment {self.spec} {self.header.kind_name} {self.size} bytes>"


def open_segment(
    spec: str,
    *,
    kind: int = 0,
    writable: bool = False,
    init_timeout: float = 2.0,
    trust_uids: Sequence[int] = (),
) -> Segment:
    """Open and validate the segment named by spec.

    kind (a KIND_* constant, 0 for any) is checked against the header.
    writable maps it read-write (needed only for consuming through the C
    library); by default the mapping is read-only. An opener that finds the
    segment still initializing waits up to init_timeout seconds, and fails
    at once with NotReady if the recorded creator has died.
    """
    path, fd_in = spec_path(spec)
    flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC
    if fd_in is not None:
        fd = os.dup(fd_in)
    else:
        try:
            fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise Untrusted(f"{spec}: {path} is a symbolic link") from None
            raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Untrusted(f"{spec}: not a regular file")
        if st.st_uid not in (os.geteuid(), 0) and st.st_uid not in trust_uids:
            raise Untrusted(f"{spec}: owned by uid {st.st_uid}, not by us or root (pass trust_uids to accept it)")
        deadline = time.monotonic() + init_timeout
        backoff = 0.0001
        while True:
            size = os.fstat(fd).st_size
            if size >= HEADER_SIZE:
                mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0))
                try:
                    seg = _attach(spec, mm, size, writable)
                except _NotYet as e:
                    mm.close()
                    why = str(e)
                else:
                    if kind and seg.kind != kind:
                        seg.close()
                        raise TypeMismatch(f"{spec}: segment holds a {seg.header.kind_name}, opened as a {KIND_NAMES.get(kind, kind)}")
                    return seg
            elif size == 0:
                why = "object still has zero size"
            else:
                raise TooSmall(f"{spec}: {size} bytes, header needs {HEADER_SIZE}")
            if time.monotonic() > deadline:
                raise NotReady(f"{spec}: {why} after {init_timeout}s")
            time.sleep(backoff)
            backoff = min(backoff * 2, 0.02)
    finally:
        os.close(fd)


class _NotYet(Exception):
    pass


def _attach(spec: str, mm: mmap.mmap, size: int, writable: bool) -> Segment:
    st = int.from_bytes(mm[OFF_STATE : OFF_STATE + 4], "little")
    if st in (STATE_ZERO, STATE_INITIALIZING):
        magic = mm[:8]
        if st == STATE_ZERO and magic not in (MAGIC, b"\x00" * 8):
            raise BadMagic(f"{spec}: first bytes are {magic.hex(' ')}")
        pid, start = struct.unpack_from("<i4xQ", mm, OFF_CREATOR)
        if pid != 0 and proc_dead(pid, start):
            raise NotReady(f"{spec}: creator pid {pid} died before finishing initialization (remove the segment and create it again)")
        raise _NotYet("no shmkit header written (all zero)" if pid == 0 else f"creator pid {pid} still initializing")
    if st != STATE_READY:
        if mm[:8] != MAGIC:
            raise BadMagic(f"{spec}: first bytes are {mm[:8].hex(' ')}")
        raise Corrupt(f"{spec}: init state word {st:#x} is not a known state")
    # The state word was read first: a Ready header is whole. Validate
    # private copies; a peer may keep writing.
    hdr = mm[:HEADER_SIZE]
    h = Header.unpack(hdr)
    if h.magic != MAGIC:
        raise BadMagic(f"{spec}: first bytes are {h.magic.hex(' ')}")
    desc = b""
    if h.type_desc_off <= size and h.type_desc_len <= min(size - h.type_desc_off, MAX_TYPE_DESC * MAX_TYPES):
        desc = mm[h.type_desc_off : h.type_desc_off + h.type_desc_len]
    try:
        h, types = validate(hdr, desc, size)
    except ShmkitError as e:
        raise type(e)(f"{spec}: {e}") from None
    return Segment(spec, mm, size, h, types, writable)
