"""Reading shmkit structures from Python: Value, Ring, Map and Bus.

Everything here reads shared memory and never writes it (segments are
mapped read-only unless asked otherwise). Consuming (advancing a ring's
head, joining a bus's subscriber table, waking Go) goes through the C
library; see shmkit.native.

Memory ordering. The pure-Python readers use plain loads: one aligned
load per shared word (see Segment.u64) and memcpy for slot copies. Go's
producers publish with sequentially consistent stores (a slot, then the
cursor), and the readers here load in the reverse order (the cursor, then
the slot, then the cursor or a sequence word again). On x86-64 loads are
not reordered with loads, so that is enough. On arm64 the CPU may reorder
them: use the C library there (shmkit.native), whose loads are C11
acquire loads.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

from . import _xxhash
from .segment import (
    KIND_BUS,
    KIND_MAP,
    KIND_RING,
    KIND_VALUE,
    LINE_SIZE,
    Corrupt,
    Segment,
    ShmkitError,
    TypeInfo,
    TypeMismatch,
    decode_word,
    open_segment,
    proc_dead,
)

__all__ = [
    "Value",
    "Ring",
    "Map",
    "Bus",
    "BusReader",
    "Holder",
    "Lagged",
    "Closed",
    "Busy",
]


class Lagged(ShmkitError):
    """A bus reader was lapped: missed messages were overwritten."""

    def __init__(self, missed: int, msg: str = "") -> None:
        super().__init__(msg or f"lagged: missed {missed} messages")
        self.missed = missed


class Closed(ShmkitError):
    """The bus was closed for writes and everything published was read."""


class Busy(ShmkitError):
    """A map shard stayed mid-write through every read attempt (a writer
    descheduled for long, or one that died mid-write: the next Go access
    to the shard repairs it)."""


@dataclass
class Holder:
    """The process named by a role or owner word."""

    pid: int
    start: int
    alive: bool

    @classmethod
    def from_word(cls, w: int) -> "Holder":
        if w == 0:
            return cls(0, 0, False)
        pid, start = decode_word(w)
        return cls(pid, start, not proc_dead(pid, start))

    def __str__(self) -> str:
        if self.pid == 0:
            return "free"
        return f"pid {self.pid} ({'alive' if self.alive else 'dead'})"


def _align_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _numpy_view(seg: Segment, ti: TypeInfo, off: int, count: int):
    import numpy as np

    return np.frombuffer(seg.mem, dtype=ti.numpy_dtype(), count=count, offset=off)


class _Handle:
    seg: Segment

    def close(self) -> None:
        self.seg.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- Value


class Value(_Handle):
    """One T in a segment (Go's layout.Value[T])."""

    def __init__(self, seg: Segment) -> None:
        self.seg = seg
        h = seg.header
        if h.num_types != 1 or h.num_regions != 1:
            raise Corrupt(f"{seg.spec}: value with {h.num_types} types, {h.num_regions} regions")
        self.type = seg.types[0]
        self.off, size = seg.region(0)
        if size != self.type.size:
            raise Corrupt(f"{seg.spec}: value region of {size} bytes for a {self.type.size}-byte type")

    @classmethod
    def open(cls, spec: str, **kw: Any) -> "Value":
        return cls(open_segment(spec, kind=KIND_VALUE, **kw))

    def raw(self) -> bytes:
        """A copy of the value's bytes."""
        return self.seg.copy(self.off, self.type.size)

    def read(self) -> Any:
        """The value, decoded (a plain copy: coordinate with writers the way
        the Go code does, e.g. atomics or a seqlock inside T)."""
        return self.type.codec.decode(self.seg.mem, self.off)

    def array(self):
        """A zero-copy numpy view of the value (a 0-d structured array)."""
        return _numpy_view(self.seg, self.type, self.off, 1).reshape(())


# ---------------------------------------------------------------- Ring

# Ring control block (shmring/core.go): one 128-byte line per hot word.
RING_TAIL, RING_HEAD = 0, 128
RING_NOT_EMPTY, RING_NOT_FULL, RING_NOT_FULL_AT = 256, 384, 392
RING_PRODUCER, RING_CONSUMER = 512, 520
RING_CONTROL_SIZE = 640
PARKED_BIT = 1 << 31
MAX_CAPACITY = 1 << 40


class Ring(_Handle):
    """A shmring.Ring[T]: read without consuming (peek, stats, numpy view).
    Consuming goes through shmkit.native.RingConsumer."""

    def __init__(self, seg: Segment) -> None:
        self.seg = seg
        h = seg.header
        if h.num_types != 1 or h.num_regions != 2:
            raise Corrupt(f"{seg.spec}: ring with {h.num_types} types, {h.num_regions} regions")
        self.type = seg.types[0]
        cap = h.capacity
        if cap == 0 or cap & (cap - 1) or cap > MAX_CAPACITY:
            raise Corrupt(f"{seg.spec}: capacity {cap} (must be a power of two in [1, 2^40])")
        self.cap = cap
        self.ctl, ctl_size = seg.region(0)
        self.data, data_size = seg.region(1)
        if ctl_size < RING_CONTROL_SIZE or h.params[0] != self.type.size or self.type.size == 0 or data_size != cap * self.type.size:
            raise Corrupt(f"{seg.spec}: element size {h.params[0]}, slot region {data_size} bytes for {cap} slots of {self.type.size} bytes")

    @classmethod
    def open(cls, spec: str, **kw: Any) -> "Ring":
        return cls(open_segment(spec, kind=KIND_RING, **kw))

    def tail(self) -> int:
        """Items ever published."""
        return self.seg.u64(self.ctl + RING_TAIL)

    def head(self) -> int:
        """Items ever consumed."""
        return self.seg.u64(self.ctl + RING_HEAD)

    def __len__(self) -> int:
        h = self.head()
        d = self.tail() - h
        return min(max(d, 0), self.cap)

    def stats(self) -> Dict[str, Any]:
        s = self.seg
        return {
            "cap": self.cap,
            "head": self.head(),
            "tail": self.tail(),
            "len": len(self),
            "producer": Holder.from_word(s.u64(self.ctl + RING_PRODUCER)),
            "consumer": Holder.from_word(s.u64(self.ctl + RING_CONSUMER)),
            "producer_waiting": bool(s.u32(self.ctl + RING_NOT_FULL) & PARKED_BIT),
            "consumer_waiting": bool(s.u32(self.ctl + RING_NOT_EMPTY) & PARKED_BIT),
        }

    def peek_raw(self, n: Optional[int] = None) -> Tuple[int, List[bytes]]:
        """(first index, [item bytes]) of up to n items published and not yet
        consumed, without consuming them. Items the consumer released (and
        the producer may be overwriting) during the copy are dropped from
        the front."""
        size, mask = self.type.size, self.cap - 1
        h0 = self.head()
        t = self.tail()
        if t < h0 or t - h0 > self.cap:
            raise Corrupt(f"{self.seg.spec}: head {h0}, tail {t}, capacity {self.cap}")
        if n is not None:
            t = min(t, h0 + max(n, 0))
        items = [self.seg.copy(self.data + ((i & mask) * size), size) for i in range(h0, t)]
        h1 = self.head()  # slots before h1 may have been reused meanwhile
        if h1 > h0:
            drop = min(h1 - h0, len(items))
            items = items[drop:]
            h0 += drop
        return h0, items

    def peek(self, n: Optional[int] = None) -> Tuple[int, List[Any]]:
        """peek_raw, decoded."""
        first, raw = self.peek_raw(n)
        dec = self.type.codec.decode
        return first, [dec(b) for b in raw]

    def array(self):
        """A zero-copy numpy view of all slots; item i is at [i % cap]. Only
        slots in [head, tail) hold published items, and the producer may
        reuse a slot once the consumer moves past it."""
        return _numpy_view(self.seg, self.type, self.data, self.cap)


# ---------------------------------------------------------------- Map

# shardCtl (shmmap/layout_unsafe.go): Mu (32 bytes), Count, RedoOp, RedoSlot, Seq.
MAP_CTL_COUNT, MAP_CTL_REDO_OP, MAP_CTL_SEQ = 32, 40, 48
MAP_CTL_HEADER = 64
MAP_SCHEME_XXH64_PREFIX = 1
MAP_MAX_SHARD_BITS, MAP_MIN_SHARD_SLOTS, MAP_MAX_SHARD_SLOTS = 16, 8, 1 << 30
MAP_READ_ATTEMPTS = 64


class Map(_Handle):
    """A shmmap.Map[K, V]: snapshot, get and len, lock-free (seqlock reads
    per shard, as Go's readers do), never writing the segment."""

    def __init__(self, seg: Segment) -> None:
        self.seg = seg
        h = seg.header
        name = seg.spec
        if h.num_types != 2 or h.num_regions != 2:
            raise Corrupt(f"{name}: map with {h.num_types} types, {h.num_regions} regions")
        self.key_type, self.value_type = seg.types
        p = h.params
        if p[0] != MAP_SCHEME_XXH64_PREFIX:
            raise Corrupt(f"{name}: unknown hash scheme {p[0]}")
        if p[2] > MAP_MAX_SHARD_BITS or not MAP_MIN_SHARD_SLOTS <= p[3] <= MAP_MAX_SHARD_SLOTS:
            raise Corrupt(f"{name}: geometry 2^{p[2]} shards of {p[3]} slots out of range")
        self.seed, self.shard_bits, self.per_shard, self.limit = p[1], p[2], p[3], p[4]
        self.shards = 1 << self.shard_bits
        if not 1 <= self.limit < self.per_shard:
            raise Corrupt(f"{name}: shard limit {self.limit} for {self.per_shard} slots")
        if not 1 <= h.capacity <= self.shards * self.limit:
            raise Corrupt(f"{name}: capacity {h.capacity} for {self.shards} shards of limit {self.limit}")
        kt, vt = self.key_type, self.value_type
        slot_align = max(8, kt.align, vt.align)
        self.key_off = _align_up(8, kt.align)
        self.val_off = _align_up(self.key_off + kt.size, vt.align)
        self.slot_size = _align_up(self.val_off + vt.size, slot_align)
        self.stride = _align_up(MAP_CTL_HEADER + self.slot_size, LINE_SIZE)
        self.shard_mem, s0 = seg.region(0)
        self.slot_mem, s1 = seg.region(1)
        want = (self.shards * self.stride, self.shards * self.per_shard * self.slot_size)
        if (s0, s1) != want:
            raise Corrupt(f"{name}: regions of {s0} and {s1} bytes, geometry needs {want[0]} and {want[1]}")
        self.capacity = h.capacity
        self._key_spans = kt.parsed.type.spans()

    @classmethod
    def open(cls, spec: str, **kw: Any) -> "Map":
        return cls(open_segment(spec, kind=KIND_MAP, **kw))

    def __len__(self) -> int:
        """The sum of the shards' live counts (a hint while writers run)."""
        return sum(self.seg.u64(self.shard_mem + sh * self.stride + MAP_CTL_COUNT) for sh in range(self.shards))

    def _read_shard(self, sh: int, read) -> Any:
        """Run read() under shard sh's seqlock until it saw a stable shard."""
        seq_off = self.shard_mem + sh * self.stride + MAP_CTL_SEQ
        for attempt in range(MAP_READ_ATTEMPTS):
            start = self.seg.u64(seq_off)
            if start & 1:
                time.sleep(0 if attempt < 8 else 0.0005)
                continue
            out = read()
            if self.seg.u64(seq_off) == start:
                return out
        raise Busy(f"{self.seg.spec}: shard {sh} stayed mid-write through {MAP_READ_ATTEMPTS} read attempts")

    def _shard_items_raw(self, sh: int) -> List[Tuple[bytes, bytes]]:
        base = self.slot_mem + sh * self.per_shard * self.slot_size
        n = self.per_shard * self.slot_size
        buf = self._read_shard(sh, lambda: self.seg.copy(base, n))
        out = []
        kt, vt, ss = self.key_type.size, self.value_type.size, self.slot_size
        mv = memoryview(buf)
        for i in range(self.per_shard):
            o = i * ss
            if int.from_bytes(mv[o : o + 8], "little") != 0:
                out.append((bytes(mv[o + self.key_off : o + self.key_off + kt]), bytes(mv[o + self.val_off : o + self.val_off + vt])))
        return out

    def items_raw(self) -> List[Tuple[bytes, bytes]]:
        """Every (key bytes, value bytes), one shard at a time: each shard is
        a consistent snapshot; the whole is not one instant."""
        out: List[Tuple[bytes, bytes]] = []
        for sh in range(self.shards):
            out.extend(self._shard_items_raw(sh))
        return out

    def snapshot(self) -> List[Tuple[Any, Any]]:
        """items_raw, decoded: [(key, value)]."""
        kd, vd = self.key_type.codec.decode, self.value_type.codec.decode
        return [(kd(k), vd(v)) for k, v in self.items_raw()]

    def to_dict(self) -> Dict[Any, Any]:
        """snapshot() as a dict; struct keys become tuples of their fields."""

        def hashable(k: Any) -> Any:
            if isinstance(k, dict):
                return tuple(hashable(x) for x in k.values())
            if isinstance(k, list):
                return tuple(hashable(x) for x in k)
            return k

        return {hashable(k): v for k, v in self.snapshot()}

    def _hash(self, key_bytes: bytes) -> int:
        data = self.seed.to_bytes(8, "little") + b"".join(key_bytes[o : o + n] for o, n in self._key_spans)
        return _xxhash.xxh64(data)

    def _key_equal(self, a: bytes, b: bytes) -> bool:
        return all(a[o : o + n] == b[o : o + n] for o, n in self._key_spans)

    def get_raw(self, key_bytes: bytes) -> Optional[bytes]:
        """The value bytes stored for the key with these bytes, or None."""
        if len(key_bytes) != self.key_type.size:
            raise ValueError(f"key of {len(key_bytes)} bytes, map keys have {self.key_type.size}")
        tag = self._hash(key_bytes) | 1
        sh = tag >> (64 - self.shard_bits) if self.shard_bits else 0
        per = self.per_shard
        home = ((tag >> 1) & 0xFFFFFFFF) * per >> 32
        base = self.slot_mem + sh * per * self.slot_size
        ss, ko, vo = self.slot_size, self.key_off, self.val_off
        kn, vn = self.key_type.size, self.value_type.size

        def probe() -> Optional[bytes]:
            i = home
            for _ in range(per):
                o = base + i * ss
                meta = self.seg.u64(o)
                if meta == 0:
                    return None
                if meta == tag and self._key_equal(self.seg.copy(o + ko, kn), key_bytes):
                    return self.seg.copy(o + vo, vn)
                i = 0 if i + 1 == per else i + 1
            return None

        return self._read_shard(sh, probe)

    def get(self, key: Any, default: Any = None) -> Any:
        """The value stored for key (an int, a dict of fields, ...: whatever
        the key type's codec encodes), decoded; default when absent."""
        v = self.get_raw(self.key_type.codec.encode(key))
        return default if v is None else self.value_type.codec.decode(v)


# ---------------------------------------------------------------- Bus

# Bus control block (shmbus/core.go).
BUS_TAIL, BUS_NOT_EMPTY, BUS_NOT_FULL, BUS_NOT_FULL_AT = 0, 128, 256, 264
BUS_GEN, BUS_CLOSED, BUS_PUBLISHER, BUS_LOCK, BUS_TABLE_FREE = 384, 392, 512, 520, 528
BUS_CONTROL_SIZE = 640
# Subscriber record: cursor alone on a line, then owner, state, name.
REC_SIZE, REC_CURSOR, REC_OWNER, REC_STATE, REC_NAME_LEN = 256, 0, 128, 136, 140
REC_LAPPED, REC_MISSED, REC_NAME = 144, 152, 160
MAX_NAME_LEN, MAX_SUBSCRIBERS = 64, 4096
BLOCK, OVERWRITE = 1, 2


class Bus(_Handle):
    """A shmbus.Bus[T]. reader() follows it without joining the subscriber
    table (pure Python, read-only: it cannot hold a Block publisher back, so
    it may be lapped); shmkit.native.BusSubscriber joins as a real
    subscriber."""

    def __init__(self, seg: Segment) -> None:
        self.seg = seg
        h = seg.header
        name = seg.spec
        if h.num_types != 1 or h.num_regions != 3:
            raise Corrupt(f"{name}: bus with {h.num_types} types, {h.num_regions} regions")
        self.type = seg.types[0]
        cap = h.capacity
        if cap == 0 or cap & (cap - 1) or cap > MAX_CAPACITY:
            raise Corrupt(f"{name}: capacity {cap} (must be a power of two in [1, 2^40])")
        self.cap = cap
        self.max_subscribers = h.params[1]
        if not 1 <= self.max_subscribers <= MAX_SUBSCRIBERS:
            raise Corrupt(f"{name}: {self.max_subscribers} subscriber records")
        self.overflow = h.params[2]
        if self.overflow not in (BLOCK, OVERWRITE):
            raise Corrupt(f"{name}: overflow policy {self.overflow}")
        size = self.type.size
        if h.params[0] != size or size == 0:
            raise Corrupt(f"{name}: element size {h.params[0]}, type has {size}")
        if self.overflow == OVERWRITE:
            self.value_off = _align_up(8, self.type.align)
            self.slot_size = _align_up(self.value_off + size, max(8, self.type.align))
        else:
            self.value_off, self.slot_size = 0, size
        self.ctl, ctl_size = seg.region(0)
        self.recs, rec_size = seg.region(1)
        self.data, data_size = seg.region(2)
        if ctl_size < BUS_CONTROL_SIZE or rec_size != self.max_subscribers * REC_SIZE or data_size != cap * self.slot_size:
            raise Corrupt(f"{name}: regions of {ctl_size}, {rec_size}, {data_size} bytes do not fit the geometry")

    @classmethod
    def open(cls, spec: str, **kw: Any) -> "Bus":
        return cls(open_segment(spec, kind=KIND_BUS, **kw))

    def published(self) -> int:
        """Messages ever published (the tail)."""
        return self.seg.u64(self.ctl + BUS_TAIL)

    def closed_for_writes(self) -> bool:
        return self.seg.u32(self.ctl + BUS_CLOSED) != 0

    def subscribers(self) -> List[Dict[str, Any]]:
        """The subscriber table, as Go's Stats reports it."""
        out = []
        s = self.seg
        t = self.published()
        for i in range(self.max_subscribers):
            r = self.recs + i * REC_SIZE
            st = s.u32(r + REC_STATE)
            if st == 0:
                continue
            n = min(s.u32(r + REC_NAME_LEN), MAX_NAME_LEN)
            cur = s.u64(r + REC_CURSOR)
            out.append({
                "index": i,
                "durable": st == 2,
                "name": s.copy(r + REC_NAME, n).decode("utf-8", "replace") if st == 2 else "",
                "owner": Holder.from_word(s.u64(r + REC_OWNER)),
                "cursor": cur,
                "lag": t - cur if cur <= t else 0,
                "lapped": s.u64(r + REC_LAPPED),
                "missed": s.u64(r + REC_MISSED),
            })
        return out

    def stats(self) -> Dict[str, Any]:
        s = self.seg
        return {
            "cap": self.cap,
            "overflow": "block" if self.overflow == BLOCK else "overwrite",
            "max_subscribers": self.max_subscribers,
            "published": self.published(),
            "closed": self.closed_for_writes(),
            "publisher": Holder.from_word(s.u64(self.ctl + BUS_PUBLISHER)),
            "publisher_waiting": bool(s.u32(self.ctl + BUS_NOT_FULL) & PARKED_BIT),
            "subscriber_waiting": bool(s.u32(self.ctl + BUS_NOT_EMPTY) & PARKED_BIT),
            "subscribers": self.subscribers(),
        }

    def reader(self, from_oldest: bool = False) -> "BusReader":
        """A read-only follower starting at the next message published, or
        (from_oldest) at the oldest one still retained."""
        t = self.published()
        cur = t - min(t, self.cap - 1) if from_oldest else t
        return BusReader(self, cur)

    def array(self):
        """A zero-copy numpy view of the slots (Block buses: message m is at
        [m % cap]). Overwrite buses interleave sequence words: use
        reader()."""
        if self.overflow != BLOCK:
            raise TypeMismatch(f"{self.seg.spec}: an overwrite bus has no plain slot array")
        return _numpy_view(self.seg, self.type, self.data, self.cap)


class Subscriber:
    """What every bus reader (BusReader here; native's PyBusSubscriber and
    HeaderBusSubscriber) builds on its next_raw and its bus: decoding, and
    iteration until the bus is closed and drained."""

    bus: "Bus"

    def next_raw(self, timeout: Optional[float] = None) -> bytes:
        raise NotImplementedError

    def next(self, timeout: Optional[float] = None) -> Any:
        """next_raw, decoded."""
        return self.bus.type.codec.decode(self.next_raw(timeout))

    def __iter__(self) -> Iterator[Any]:
        """Messages until the bus is closed and drained (Lagged propagates)."""
        while True:
            try:
                yield self.next()
            except Closed:
                return


class BusReader(Subscriber):
    """Follows a bus from a private cursor, reading in place and never
    writing. A message is returned only if it was certainly not being
    overwritten while it was copied; otherwise next() raises Lagged (the
    cursor moves to the oldest message the publisher cannot be writing, and
    missed counts what was lost)."""

    def __init__(self, bus: Bus, cursor: int) -> None:
        self.bus = bus
        self.cursor = cursor
        self.missed = 0
        self.poll_interval = 0.0005

    def _lagged(self, t: int) -> Lagged:
        b = self.bus
        nxt = t - b.cap + 1
        n = nxt - self.cursor
        self.cursor = nxt
        self.missed += n
        return Lagged(n)

    def try_next_raw(self) -> Optional[bytes]:
        """The next message's bytes, or None when nothing new is there.
        Raises Lagged, or Closed once the bus is closed and drained."""
        b, s = self.bus, self.bus.seg
        closed = b.closed_for_writes()
        t = b.published()
        c = self.cursor
        if t == c:
            if closed:
                raise Closed(f"{s.spec}: closed for writes")
            return None
        if t < c:
            raise Corrupt(f"{s.spec}: tail {t} behind cursor {c}")
        if t - c >= b.cap:
            # Message c may be being overwritten by message c+cap.
            raise self._lagged(t)
        slot = b.data + (c & (b.cap - 1)) * b.slot_size
        if b.overflow == OVERWRITE:
            if s.u64(slot) != c + 1:
                raise self._lagged(max(b.published(), c + b.cap))
            data = s.copy(slot + b.value_off, b.type.size)
            if s.u64(slot) != c + 1:
                raise self._lagged(max(b.published(), c + b.cap))
        else:
            data = s.copy(slot, b.type.size)
            t2 = b.published()
            if t2 - c >= b.cap:  # the publisher reached message c+cap: the copy may be torn
                raise self._lagged(t2)
        self.cursor = c + 1
        return data

    def next_raw(self, timeout: Optional[float] = None) -> bytes:
        """The next message's bytes, polling until one is published. Raises
        TimeoutError, Lagged or Closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.00005
        while True:
            m = self.try_next_raw()
            if m is not None:
                return m
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{self.bus.seg.spec}: no message within {timeout}s")
            time.sleep(delay)
            delay = min(delay * 2, self.poll_interval)

