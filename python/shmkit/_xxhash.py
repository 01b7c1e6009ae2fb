"""Pure-Python XXH64 (the 64-bit xxHash), as github.com/cespare/xxhash/v2
computes it with seed 0 (and any seed, for completeness).

shmkit uses it for the header checksum, the type fingerprints and the map's
key hash. Speed is not a concern here: headers are a few hundred bytes and
map keys a few dozen.
"""

from __future__ import annotations

__all__ = ["xxh64", "XXH64"]

_M = (1 << 64) - 1
P1 = 11400714785074694791
P2 = 14029467366897019727
P3 = 1609587929392839161
P4 = 9650029242287828579
P5 = 2870177450012600261


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M


def _round(acc: int, lane: int) -> int:
    acc = (acc + lane * P2) & _M
    return (_rotl(acc, 31) * P1) & _M


def _merge(acc: int, val: int) -> int:
    acc ^= _round(0, val)
    return (acc * P1 + P4) & _M


class XXH64:
    """Streaming XXH64: update() any number of times, then digest()."""

    def __init__(self, seed: int = 0) -> None:
        self._seed = seed & _M
        self._v = [
            (self._seed + P1 + P2) & _M,
            (self._seed + P2) & _M,
            self._seed,
            (self._seed - P1) & _M,
        ]
        self._buf = b""
        self._total = 0

    def update(self, data: bytes | bytearray | memoryview) -> "XXH64":
        data = bytes(data)
        self._total += len(data)
        buf = self._buf + data
        n = len(buf) // 32 * 32
        v = self._v
        frm = int.from_bytes
        for i in range(0, n, 32):
            v[0] = _round(v[0], frm(buf[i : i + 8], "little"))
            v[1] = _round(v[1], frm(buf[i + 8 : i + 16], "little"))
            v[2] = _round(v[2], frm(buf[i + 16 : i + 24], "little"))
            v[3] = _round(v[3], frm(buf[i + 24 : i + 32], "little"))
        self._buf = buf[n:]
        return self

    def digest(self) -> int:
        v = self._v
        if self._total >= 32:
            h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M
            for x in v:
                h = _merge(h, x)
        else:
            h = (self._seed + P5) & _M
        h = (h + self._total) & _M
        b = self._buf
        i = 0
        while i + 8 <= len(b):
            h ^= _round(0, int.from_bytes(b[i : i + 8], "little"))
            h = (_rotl(h, 27) * P1 + P4) & _M
            i += 8
        if i + 4 <= len(b):
            h ^= (int.from_bytes(b[i : i + 4], "little") * P1) & _M
            h = (_rotl(h, 23) * P2 + P3) & _M
            i += 4
        while i < len(b):
            h ^= (b[i] * P5) & _M
            h = (_rotl(h, 11) * P1) & _M
            i += 1
        h ^= h >> 33
        h = (h * P2) & _M
        h ^= h >> 29
        h = (h * P3) & _M
        h ^= h >> 32
        return h


def xxh64(data: bytes | bytearray | memoryview | str, seed: int = 0) -> int:
    """Return the XXH64 of data (a str is hashed as its UTF-8 bytes)."""
    if isinstance(data, str):
        data = data.encode()
    return XXH64(seed).update(data).digest()
