"""Consuming from Python: a ring consumer and a bus subscriber that take
part in the Go protocols (docs/FORMAT.md sections 5, 6 and 10): they claim
role words, store cursors with sequentially consistent C11 atomics, park on
and notify the futex-based Notifiers, so Go producers parked on a full ring
or a Block bus are woken, and Go consumers' waits work as with a Go peer.

The atomics live in a small shared library (shmkit/_native.c) loaded with
ctypes: SHMKIT_NATIVE names a prebuilt one; otherwise the cached build of
`python3 -m shmkit.build` is used, or made on first use when gcc is there.
Without it, importing this module raises NativeUnavailable (an
ImportError).

Segments must be opened writable: RingConsumer.open(spec) and
BusSubscriber.open(spec) do that.
"""

from __future__ import annotations

import ctypes
import os
import time
from typing import Any, List, Optional

from . import build as _build
from .segment import (
    KIND_BUS,
    KIND_RING,
    Corrupt,
    ShmkitError,
    decode_word,
    open_segment,
    proc_dead,
    self_word,
)
from .structures import (
    BLOCK,
    BUS_CLOSED,
    BUS_GEN,
    BUS_LOCK,
    BUS_NOT_EMPTY,
    BUS_NOT_FULL,
    BUS_NOT_FULL_AT,
    BUS_TABLE_FREE,
    BUS_TAIL,
    OVERWRITE,
    REC_CURSOR,
    REC_LAPPED,
    REC_MISSED,
    REC_NAME_LEN,
    REC_OWNER,
    REC_SIZE,
    REC_STATE,
    RING_CONSUMER,
    RING_HEAD,
    RING_NOT_EMPTY,
    RING_NOT_FULL,
    RING_NOT_FULL_AT,
    RING_TAIL,
    Bus,
    Closed,
    Lagged,
    Ring,
    Subscriber,
)

__all__ = ["NativeUnavailable", "RoleTaken", "RingConsumer", "BusSubscriber", "library", "USES_HEADER"]

M64 = (1 << 64) - 1


class NativeUnavailable(ImportError):
    """The native helper library is not built and cannot be built here."""


class RoleTaken(ShmkitError):
    """A single-holder role (ring consumer, subscriber record, table lock)
    is held by another live process."""


def _load() -> ctypes.CDLL:
    path = os.environ.get("SHMKIT_NATIVE")
    if not path:
        path = _build.cache_path()
        if not os.path.exists(path):
            try:
                _build.build(path)
            except (RuntimeError, OSError) as e:
                raise NativeUnavailable(f"shmkit native library: {e} (run python3 -m shmkit.build, or set SHMKIT_NATIVE)") from None
    lib = ctypes.CDLL(path)
    vp, u64, u32 = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32
    sigs = {
        "shkpy_abi": ([], ctypes.c_int),
        "shkpy_load64": ([vp], u64),
        "shkpy_load32": ([vp], u32),
        "shkpy_store64": ([vp, u64], None),
        "shkpy_store32": ([vp, u32], None),
        "shkpy_add64": ([vp, u64], u64),
        "shkpy_cas64": ([vp, u64, u64], ctypes.c_int),
        "shkpy_cas32": ([vp, u32, u32], ctypes.c_int),
        "shkpy_copy_acquire": ([vp, vp, ctypes.c_size_t], None),
        "shkpy_futex_wait": ([vp, u32, ctypes.c_int64], ctypes.c_int),
        "shkpy_futex_wake": ([vp, ctypes.c_int], ctypes.c_int),
        "shkpy_notify": ([vp], None),
        "shkpy_arm": ([vp], u32),
    }
    for name, (args, res) in sigs.items():
        f = getattr(lib, name)
        f.argtypes, f.restype = args, res
    if lib.shkpy_abi() != 1:
        raise NativeUnavailable(f"{path}: unexpected ABI version")
    lib.shkpy_has_header.restype = ctypes.c_int
    if lib.shkpy_has_header():
        cp, sz, i64 = ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int64
        hsigs = {
            "shmkit_last_error": ([], cp),
            "shmkit_last_code": ([], ctypes.c_int),
            "shmkit_ring_open": ([cp, cp, u64, u64], vp),
            "shmkit_ring_pop_batch": ([vp, vp, sz, i64], i64),
            "shmkit_ring_peek": ([vp, sz, ctypes.POINTER(sz), i64], vp),
            "shmkit_ring_advance": ([vp, sz], ctypes.c_int),
            "shmkit_ring_close": ([vp], None),
            "shmkit_bus_subscribe": ([cp, cp, u64, u64, ctypes.c_int], vp),
            "shmkit_bus_next": ([vp, vp, i64], ctypes.c_int),
            "shmkit_bus_missed": ([vp], u64),
            "shmkit_bus_cursor": ([vp], u64),
            "shmkit_bus_close": ([vp], None),
        }
        for name, (args, res) in hsigs.items():
            f = getattr(lib, name)
            f.argtypes, f.restype = args, res
    return lib


_lib = _load()


def library() -> ctypes.CDLL:
    """The loaded helper library."""
    return _lib


_ld64, _ld32, _st64, _st32 = _lib.shkpy_load64, _lib.shkpy_load32, _lib.shkpy_store64, _lib.shkpy_store32
_cas64, _add64, _copy, _notify, _arm, _fwait = _lib.shkpy_cas64, _lib.shkpy_add64, _lib.shkpy_copy_acquire, _lib.shkpy_notify, _lib.shkpy_arm, _lib.shkpy_futex_wait


class _Mem:
    """The base address of a writable segment mapping."""

    def __init__(self, seg) -> None:
        if not seg.writable:
            raise ValueError(f"{seg.spec}: consuming needs the segment opened writable (open_segment(spec, writable=True))")
        self._anchor = ctypes.c_char.from_buffer(seg.mem)  # pins the mapping
        self.base = ctypes.addressof(self._anchor)

    def release(self) -> None:
        self._anchor = None  # type: ignore[assignment]

    def copy(self, off: int, n: int) -> bytes:
        buf = ctypes.create_string_buffer(n)
        _copy(buf, self.base + off, n)
        return buf.raw


# Roles this process holds through some handle, so that a second handle
# cannot claim the same role (the word names the process, not the handle).
_held: set = set()


def _claim(addr: int, key: Any, what: str) -> None:
    me = self_word()
    if key in _held:
        raise RoleTaken(f"{what} is held by another handle in this process (pid {os.getpid()})")
    for _ in range(100):
        cur = _ld64(addr)
        if cur == me:
            break  # left by a handle of ours that was dropped without close
        if cur == 0:
            if _cas64(addr, 0, me):
                break
            continue
        pid, start = decode_word(cur)
        if not proc_dead(pid, start):
            raise RoleTaken(f"{what} is held by live pid {pid}")
        if _cas64(addr, cur, me):
            break
    else:
        raise RoleTaken(f"{what}: the role word keeps changing")
    _held.add(key)


def _release(addr: int, key: Any) -> None:
    _held.discard(key)
    _cas64(addr, self_word(), 0)


def _wait(word: int, ready, deadline: Optional[float]) -> bool:
    """Notifier wait (docs/FORMAT.md 5.2): spin briefly, then arm the parked
    bit, re-check ready() (seq_cst loads), and FUTEX_WAIT. Returns ready()'s
    final verdict (False at the deadline)."""
    for _ in range(50):
        if ready():
            return True
    while True:
        w = _arm(word)
        if w and not ready():
            slice_ns = 100_000_000
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return ready()
                slice_ns = min(slice_ns, max(int(left * 1e9), 1))
            _fwait(word, w, slice_ns)
        if ready():
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return ready()


def _deadline(timeout: Optional[float]) -> Optional[float]:
    return None if timeout is None else time.monotonic() + timeout


class PyRingConsumer:
    """The consumer of a shmring.Ring[T]: pop, peek/advance, pop_batch.
    Claims the consumer role (released by close); a Go producer parked on a
    full ring is woken when Python frees the room it waits for."""

    def __init__(self, ring: Ring) -> None:
        self.ring = ring
        seg = ring.seg
        self._mem = _Mem(seg)
        a = self._mem.base + ring.ctl
        self._tail, self._head = a + RING_TAIL, a + RING_HEAD
        self._not_empty, self._not_full, self._not_full_at = a + RING_NOT_EMPTY, a + RING_NOT_FULL, a + RING_NOT_FULL_AT
        self._role = a + RING_CONSUMER
        h = seg.header
        self._key = ("ring-consumer", h.creator_pid, h.creator_start, h.created_unix_ns)
        _claim(self._role, self._key, "the consumer role")
        self.cap, self._mask, self._size = ring.cap, ring.cap - 1, ring.type.size
        head, tail = _ld64(self._head), _ld64(self._tail)
        if (tail - head) & M64 > self.cap:
            _release(self._role, self._key)
            raise Corrupt(f"{seg.spec}: head {head}, tail {tail}, capacity {self.cap}")
        self.head, self._tail_cache = head, tail
        self._closed = False

    @classmethod
    def open(cls, spec: str, **kw: Any) -> "PyRingConsumer":
        return cls(Ring(open_segment(spec, kind=KIND_RING, writable=True, **kw)))

    def _refresh(self) -> int:
        t = _ld64(self._tail)
        if (t - self.head) & M64 > self.cap:
            raise Corrupt(f"{self.ring.seg.spec}: head {self.head}, tail {t}, capacity {self.ring.cap}")
        self._tail_cache = t
        return (t - self.head) & M64

    def available(self) -> int:
        """Items published and not yet consumed."""
        return self._refresh()

    def peek_raw(self, n: int = 1, timeout: Optional[float] = 0) -> List[bytes]:
        """Up to n items (at least one unless the wait ends), not consumed
        until advance(). timeout 0: do not wait; None: wait forever."""
        if self._closed:
            raise Closed("consumer closed")
        avail = (self._tail_cache - self.head) & M64
        if avail == 0:
            avail = self._refresh()
        if avail == 0 and timeout != 0:
            head = self.head
            if _wait(self._not_empty, lambda: _ld64(self._tail) != head, _deadline(timeout)):
                avail = self._refresh()
        out = []
        for i in range(min(n, avail)):
            idx = (self.head + i) & self._mask
            out.append(self._mem.copy(self.ring.data + idx * self._size, self._size))
        return out

    def advance(self, k: int) -> None:
        """Release the first k peeked items to the producer (seq_cst store of
        head), waking it if it is parked waiting for this much room."""
        if k <= 0:
            return
        if k > (self._tail_cache - self.head) & M64:
            raise ValueError("advance past what was published")
        old = self.head
        new = (old + k) & M64
        self.head = new
        _st64(self._head, new)
        if _ld32(self._not_full) & 0x80000000 and ((_ld64(self._not_full_at) - old - 1) & M64) < k:
            _notify(self._not_full)

    def pop_raw(self, timeout: Optional[float] = None) -> bytes:
        items = self.peek_raw(1, timeout)
        if not items:
            raise TimeoutError(f"{self.ring.seg.spec}: ring empty")
        self.advance(1)
        return items[0]

    def pop(self, timeout: Optional[float] = None) -> Any:
        """The next item, decoded; waits up to timeout (None: forever) and
        raises TimeoutError."""
        return self.ring.type.codec.decode(self.pop_raw(timeout))

    def pop_batch(self, n: int, timeout: Optional[float] = None) -> List[Any]:
        """Up to n items (waiting for the first), consumed with one head store."""
        items = self.peek_raw(n, timeout)
        self.advance(len(items))
        dec = self.ring.type.codec.decode
        return [dec(b) for b in items]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _release(self._role, self._key)
        self._mem.release()
        self.ring.close()

    def __enter__(self) -> "PyRingConsumer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


STATE_FREE, STATE_ANON = 0, 1


class PyBusSubscriber(Subscriber):
    """An anonymous subscriber of a shmbus.Bus[T], in the subscriber table
    like a Go one: a Block publisher waits for it (and skips it once its
    process is dead), and it is woken by the publisher's notify."""

    def __init__(self, bus: Bus, from_oldest: bool = False, lock_timeout: float = 10.0) -> None:
        self.bus = bus
        seg = bus.seg
        self._mem = _Mem(seg)
        a = self._mem.base + bus.ctl
        self._tail, self._closed_w, self._gen, self._lock = a + BUS_TAIL, a + BUS_CLOSED, a + BUS_GEN, a + BUS_LOCK
        self._not_empty, self._not_full, self._not_full_at, self._table_free = a + BUS_NOT_EMPTY, a + BUS_NOT_FULL, a + BUS_NOT_FULL_AT, a + BUS_TABLE_FREE
        self.cap, self._mask = bus.cap, bus.cap - 1
        self.missed = 0
        self._done = False
        h = seg.header
        self._key_base = ("bus", h.creator_pid, h.creator_start, h.created_unix_ns)
        self._lock_table(lock_timeout)
        try:
            self._join(from_oldest)
        finally:
            _cas64(self._lock, self_word(), 0)
            _notify(self._table_free)
        _notify(self._not_full)

    @classmethod
    def open(cls, spec: str, from_oldest: bool = False, **kw: Any) -> "PyBusSubscriber":
        return cls(Bus(open_segment(spec, kind=KIND_BUS, writable=True, **kw)), from_oldest)

    def _lock_table(self, timeout: float) -> None:
        me = self_word()
        deadline = time.monotonic() + timeout
        delay = 0.0001
        while not _cas64(self._lock, 0, me):
            w = _ld64(self._lock)
            if w == me:
                raise RoleTaken("the subscriber table lock is already held by this process")
            if w != 0 and proc_dead(*decode_word(w)):
                _cas64(self._lock, w, 0)
                continue
            if time.monotonic() > deadline:
                raise RoleTaken(f"the subscriber table stays locked by pid {decode_word(w)[0]}")
            time.sleep(delay)
            delay = min(delay * 2, 0.002)

    def _rec(self, i: int, off: int) -> int:
        return self._mem.base + self.bus.recs + i * REC_SIZE + off

    def _join(self, from_oldest: bool) -> None:
        me = self_word()
        idx = -1
        n = self.bus.max_subscribers
        for i in range(n):
            if _ld32(self._rec(i, REC_STATE)) == STATE_FREE and _cas64(self._rec(i, REC_OWNER), 0, me):
                if _ld32(self._rec(i, REC_STATE)) == STATE_FREE:
                    idx = i
                    break
                _cas64(self._rec(i, REC_OWNER), me, 0)
        if idx < 0:
            for i in range(n):
                if _ld32(self._rec(i, REC_STATE)) == 2:  # durable
                    continue
                o = _ld64(self._rec(i, REC_OWNER))
                if o not in (0, me) and proc_dead(*decode_word(o)) and _cas64(self._rec(i, REC_OWNER), o, me):
                    _st32(self._rec(i, REC_STATE), STATE_FREE)
                    idx = i
                    break
        if idx < 0:
            raise RoleTaken(f"{self.bus.seg.spec}: all {n} subscriber records are in use")
        self.idx = idx
        self._key = self._key_base + (idx,)
        _held.add(self._key)
        self._cursor_addr = self._rec(idx, REC_CURSOR)
        t0 = _ld64(self._tail)
        cur = t0 - min(t0, self.cap - 1) if from_oldest else t0
        _st64(self._rec(idx, REC_LAPPED), 0)
        _st64(self._rec(idx, REC_MISSED), 0)
        _st64(self._cursor_addr, cur)
        _st32(self._rec(idx, REC_NAME_LEN), 0)
        _st32(self._rec(idx, REC_STATE), STATE_ANON)
        # The cursor is in place: make a Block publisher re-read the table,
        # then see how far it may already be.
        _add64(self._gen, 1)
        t1 = _ld64(self._tail)
        if t1 < cur:
            self._leave()
            raise Corrupt(f"{self.bus.seg.spec}: tail {t1} moved behind cursor {cur}")
        if not from_oldest:
            cur = t1
        elif t1 - cur >= self.cap:
            cur = t1 - self.cap + 1
        _st64(self._cursor_addr, cur)
        self.cursor = cur
        self._tail_cache = cur

    def _leave(self) -> None:
        me = self_word()
        if _ld64(self._rec(self.idx, REC_OWNER)) == me:
            _st32(self._rec(self.idx, REC_STATE), STATE_FREE)
        _release(self._rec(self.idx, REC_OWNER), self._key)
        _notify(self._not_full)

    def _advance(self, nxt: int) -> None:
        old = self.cursor
        self.cursor = nxt
        _st64(self._cursor_addr, nxt)
        if self.bus.overflow == BLOCK and _ld32(self._not_full) & 0x80000000 and ((_ld64(self._not_full_at) - old - 1) & M64) < nxt - old:
            _notify(self._not_full)

    def _lagged(self) -> Lagged:
        c = self.cursor
        t = _ld64(self._tail)
        if t < c + self.cap:
            raise Corrupt(f"{self.bus.seg.spec}: slot of message {c} overwritten but tail is {t}")
        nxt = t - self.cap + 1
        self._tail_cache = t
        self._advance(nxt)
        _add64(self._rec(self.idx, REC_LAPPED), 1)
        _add64(self._rec(self.idx, REC_MISSED), nxt - c)
        self.missed += nxt - c
        return Lagged(nxt - c)

    def _refresh(self) -> tuple:
        closed = _ld32(self._closed_w) != 0
        t = _ld64(self._tail)
        c = self.cursor
        if t < c or (self.bus.overflow == BLOCK and t - c > self.cap):
            raise Corrupt(f"{self.bus.seg.spec}: tail {t}, cursor {c}, capacity {self.cap}")
        self._tail_cache = t
        return t != c, closed

    def next_raw(self, timeout: Optional[float] = None) -> bytes:
        """The next message's bytes: waits up to timeout (None: forever;
        0: not at all) and raises TimeoutError, Lagged or Closed."""
        if self._done:
            raise Closed("subscriber closed")
        if self.cursor == self._tail_cache:
            ok, closed = self._refresh()
            if not ok:
                if closed:
                    raise Closed(f"{self.bus.seg.spec}: closed for writes")
                c = self.cursor
                ready = lambda: _ld64(self._tail) != c or _ld32(self._closed_w) != 0  # noqa: E731
                if timeout == 0 or not _wait(self._not_empty, ready, _deadline(timeout)):
                    raise TimeoutError(f"{self.bus.seg.spec}: no message")
                ok, closed = self._refresh()
                if not ok:
                    raise Closed(f"{self.bus.seg.spec}: closed for writes")
        c = self.cursor
        b = self.bus
        slot = b.data + (c & self._mask) * b.slot_size
        if b.overflow == BLOCK:
            data = self._mem.copy(slot, b.type.size)
            self._advance(c + 1)
            return data
        if self._tail_cache - c > self.cap:
            raise self._lagged()
        seq = self._mem.base + slot
        if _ld64(seq) == c + 1:
            data = self._mem.copy(slot + b.value_off, b.type.size)
            if _ld64(seq) == c + 1:
                self._advance(c + 1)
                return data
        raise self._lagged()

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        self._leave()
        self._mem.release()
        self.bus.close()

    def __enter__(self) -> "PyBusSubscriber":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- through include/shmkit.h ----

_E = {-1: "EEMPTY", -3: "ETIMEDOUT", -4: "ECLOSED", -8: "ECORRUPT", -12: "EROLE", -13: "EBUSY", -15: "ELAGGED", -17: "ECAPACITY"}


def _c_error(what: str, code: Optional[int] = None) -> Exception:
    code = _lib.shmkit_last_code() if code is None else code
    msg = f"{what}: {(_lib.shmkit_last_error() or b'').decode(errors='replace')}"
    if code in (-1, -3):
        return TimeoutError(msg)
    if code == -4:
        return Closed(msg)
    if code in (-12, -17):
        return RoleTaken(msg)
    if code == -8:
        return Corrupt(msg)
    return ShmkitError(f"{msg} ({_E.get(code, code)})")


def _timeout_ns(timeout: Optional[float]) -> int:
    return -1 if timeout is None else max(int(timeout * 1e9), 0)


def _type_text(ti) -> str:
    """The layout text without its ARCH/ORDER prefix (what shmkit.h's
    type_text arguments take)."""
    return ti.layout.split(" ", 1)[1]


class HeaderRingConsumer:
    """The consumer of a shmring.Ring[T], through shmkit.h's shmkit_ring_*
    (role claim, acquire/seq_cst cursors, the Notifier wake protocol).
    The consumer role is claimed at open and released at close."""

    def __init__(self, spec: str, **kw: Any) -> None:
        self.ring = Ring.open(spec, **kw)  # read-only view: stats, decoding
        ti = self.ring.type
        self._size = ti.size
        h = self.ring.seg.header
        # The role word names the process: like Go, refuse a second handle
        # of this process (shmkit.h would accept its own word).
        self._key = ("ring-consumer", h.creator_pid, h.creator_start, h.created_unix_ns)
        if self._key in _held:
            self.ring.close()
            raise RoleTaken(f"{spec}: the consumer role is held by another handle in this process (pid {os.getpid()})")
        self._h = _lib.shmkit_ring_open(spec.encode(), _type_text(ti).encode(), ti.size, ti.align)
        if not self._h:
            err = _c_error(spec)
            self.ring.close()
            raise err
        n = ctypes.c_size_t()
        if _lib.shmkit_ring_peek(self._h, 0, ctypes.byref(n), 0) is None and _lib.shmkit_last_code() not in (0, -1, -3):
            err = _c_error(spec)
            _lib.shmkit_ring_close(self._h)
            self.ring.close()
            raise err
        _held.add(self._key)
        self.cap = self.ring.cap

    @classmethod
    def open(cls, spec: str, **kw: Any) -> "HeaderRingConsumer":
        return cls(spec, **kw)

    def pop_batch_raw(self, n: int, timeout: Optional[float] = None) -> List[bytes]:
        if not self._h:
            raise Closed("consumer closed")
        buf = ctypes.create_string_buffer(max(n, 1) * self._size)
        got = _lib.shmkit_ring_pop_batch(self._h, buf, n, _timeout_ns(timeout))
        if got < 0:
            raise _c_error(self.ring.seg.spec, got)
        raw = buf.raw
        return [raw[i * self._size : (i + 1) * self._size] for i in range(got)]

    def pop_raw(self, timeout: Optional[float] = None) -> bytes:
        return self.pop_batch_raw(1, timeout)[0]

    def pop(self, timeout: Optional[float] = None) -> Any:
        """The next item, decoded; waits up to timeout (None: forever) and
        raises TimeoutError."""
        return self.ring.type.codec.decode(self.pop_raw(timeout))

    def pop_batch(self, n: int, timeout: Optional[float] = None) -> List[Any]:
        """Up to n items (waiting for the first), consumed with one head store."""
        dec = self.ring.type.codec.decode
        return [dec(b) for b in self.pop_batch_raw(n, timeout)]

    def close(self) -> None:
        if self._h:
            _lib.shmkit_ring_close(self._h)
            self._h = None
            _held.discard(self._key)
            self.ring.close()

    def __enter__(self) -> "HeaderRingConsumer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HeaderBusSubscriber(Subscriber):
    """An anonymous subscriber of a shmbus.Bus[T], through shmkit.h's
    shmkit_bus_* (joins the subscriber table: a Block publisher waits for
    it; leaves the table at close)."""

    def __init__(self, spec: str, from_oldest: bool = False, **kw: Any) -> None:
        self.bus = Bus.open(spec, **kw)
        ti = self.bus.type
        self._size = ti.size
        self._h = _lib.shmkit_bus_subscribe(spec.encode(), _type_text(ti).encode(), ti.size, ti.align, int(from_oldest))
        if not self._h:
            err = _c_error(spec)
            self.bus.close()
            raise err
        self._buf = ctypes.create_string_buffer(self._size)
        self._missed = 0

    @classmethod
    def open(cls, spec: str, from_oldest: bool = False, **kw: Any) -> "HeaderBusSubscriber":
        return cls(spec, from_oldest, **kw)

    @property
    def cursor(self) -> int:
        return _lib.shmkit_bus_cursor(self._h) if self._h else 0

    @property
    def missed(self) -> int:
        """Messages lost to laps since this subscriber joined."""
        return self._missed

    def next_raw(self, timeout: Optional[float] = None) -> bytes:
        """The next message's bytes; raises TimeoutError, Lagged or Closed."""
        if not self._h:
            raise Closed("subscriber closed")
        rc = _lib.shmkit_bus_next(self._h, self._buf, _timeout_ns(timeout))
        if rc == -15:
            n = _lib.shmkit_bus_missed(self._h)  # the last lap's count
            self._missed += n
            raise Lagged(n)
        if rc < 0:
            raise _c_error(self.bus.seg.spec, rc)
        return self._buf.raw

    def close(self) -> None:
        if self._h:
            _lib.shmkit_bus_close(self._h)
            self._h = None
            self.bus.close()

    def __enter__(self) -> "HeaderBusSubscriber":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: True when consumption goes through include/shmkit.h (the library was
#: built with it); otherwise through the Python ports over the atomics
#: (PyRingConsumer, PyBusSubscriber). SHMKIT_PY_PROTOCOL=1 forces the
#: latter (the tests run both).
USES_HEADER = bool(_lib.shkpy_has_header()) and os.environ.get("SHMKIT_PY_PROTOCOL") != "1"
RingConsumer = HeaderRingConsumer if USES_HEADER else PyRingConsumer
BusSubscriber = HeaderBusSubscriber if USES_HEADER else PyBusSubscriber
