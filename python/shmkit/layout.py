"""Type layout strings: parse them (a port of Go's layout.ParseLayout) and
turn them into a `struct` codec and, when numpy is installed, a structured
numpy.dtype.

A layout string is the canonical description of an element type that every
shmkit segment stores for each of its element types, e.g.

    amd64/le struct{ID uint64@0; Price float64@8; Qty int32@16}#24/8

Grammar (the Go side's, layout/layoutstring.go):

    layout = ARCH "/" ORDER " " type
    type   = prim | "[" LEN "]" type | struct
    struct = "struct{" [field {"; " field}] "}#" SIZE "/" ALIGN
    field  = NAME " " type "@" OFFSET
    prim   = "bool" | "int8" | "uint8" | ... | "complex128" | "int(" N ")" | "uint(" N ")"

Decoded values: integers and floats as int and float, complex numbers as
complex, [N]uint8 as bytes (Go's fixed-size byte arrays are almost always
text or raw bytes), other arrays as lists, structs as dicts keyed by field
name. Blank fields (Go's "_") are padding: left out of dicts and dtypes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Iterator, List, Optional, Tuple

__all__ = [
    "LayoutError",
    "LayoutType",
    "LayoutField",
    "ParsedLayout",
    "parse_layout",
    "Codec",
    "codec_for",
    "numpy_dtype",
]

MAX_DEPTH = 64
MAX_BYTES = 1 << 46

# prim name -> (size, struct format char, numpy kind)
PRIMS = {
    "bool": (1, "?", "b1"),
    "int8": (1, "b", "i1"),
    "uint8": (1, "B", "u1"),
    "int16": (2, "h", "i2"),
    "uint16": (2, "H", "u2"),
    "int32": (4, "i", "i4"),
    "uint32": (4, "I", "u4"),
    "int64": (8, "q", "i8"),
    "uint64": (8, "Q", "u8"),
    "float32": (4, "f", "f4"),
    "float64": (8, "d", "f8"),
    "complex64": (8, "ff", "c8"),
    "complex128": (16, "dd", "c16"),
    "int(8)": (8, "q", "i8"),
    "uint(8)": (8, "Q", "u8"),
    "int(4)": (4, "i", "i4"),
    "uint(4)": (4, "I", "u4"),
}


class LayoutError(ValueError):
    """A layout string that does not parse, or describes an impossible type."""


@dataclass
class LayoutField:
    name: str
    type: "LayoutType"
    off: int


@dataclass
class LayoutType:
    text: str
    size: int
    align: int = 0  # structs only
    fields: List[LayoutField] = field(default_factory=list)
    length: int = 0  # arrays only
    elem: Optional["LayoutType"] = None  # arrays only

    @property
    def kind(self) -> str:
        if self.elem is not None:
            return "array"
        if self.text.startswith("struct{"):
            return "struct"
        return self.text

    def natural_align(self) -> int:
        """Go's alignment of the type on a 64-bit platform."""
        if self.kind == "struct":
            return max(self.align, 1)
        if self.elem is not None:
            return self.elem.natural_align()
        size = PRIMS[self.text][0]
        if self.text.startswith("complex"):
            size //= 2
        return size

    def spans(self) -> List[Tuple[int, int]]:
        """Non-padding byte spans (offset, length) in address order, adjacent
        spans merged: shmmap hashes and compares keys over these."""
        out: List[Tuple[int, int]] = []

        def add(off: int, n: int) -> None:
            if n == 0:
                return
            if out and out[-1][0] + out[-1][1] == off:
                out[-1] = (out[-1][0], out[-1][1] + n)
            else:
                out.append((off, n))

        def walk(t: LayoutType, base: int) -> None:
            if t.kind == "struct":
                for f in t.fields:
                    walk(f.type, base + f.off)
            elif t.elem is not None:
                sub = t.elem.spans()
                for i in range(t.length):
                    for o, n in sub:
                        add(base + i * t.elem.size + o, n)
            else:
                add(base, t.size)

        walk(self, 0)
        return out


@dataclass
class ParsedLayout:
    arch: str
    order: str  # "le" or "be"
    type: LayoutType

    @property
    def byte_order(self) -> str:
        return "<" if self.order == "le" else ">"


class _Parser:
    def __init__(self, s: str) -> None:
        self.s = s
        self.i = 0
        self.depth = 0

    def error(self, msg: str) -> LayoutError:
        return LayoutError(f"type layout at byte {self.i}: {msg}")

    def eat(self, lit: str) -> bool:
        if self.s.startswith(lit, self.i):
            self.i += len(lit)
            return True
        return False

    def number(self) -> int:
        j = self.i
        while j < len(self.s) and "0" <= self.s[j] <= "9":
            j += 1
        if j == self.i or j - self.i > 20:
            raise self.error("want a number")
        v = int(self.s[self.i : j])
        if v >= 1 << 64:
            raise self.error("want a number")
        self.i = j
        return v

    def parse_type(self) -> LayoutType:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise self.error("nested too deeply")
            start = self.i
            if self.eat("["):
                n = self.number()
                if not self.eat("]"):
                    raise self.error("want ]")
                elem = self.parse_type()
                if elem.size != 0 and n > MAX_BYTES // elem.size:
                    raise self.error("array too large")
                return LayoutType(text=self.s[start : self.i], size=n * elem.size, length=n, elem=elem)
            if self.eat("struct{"):
                fields: List[LayoutField] = []
                while not self.eat("}"):
                    if fields and not self.eat("; "):
                        raise self.error("want ; or }")
                    sp = self.s.find(" ", self.i)
                    if sp <= self.i:
                        raise self.error("want a field name")
                    name = self.s[self.i : sp]
                    self.i = sp + 1
                    ft = self.parse_type()
                    if not self.eat("@"):
                        raise self.error("want @")
                    off = self.number()
                    fields.append(LayoutField(name, ft, off))
                if not self.eat("#"):
                    raise self.error("want #")
                size = self.number()
                if not self.eat("/"):
                    raise self.error("want /")
                align = self.number()
                return LayoutType(text=self.s[start : self.i], size=size, align=align, fields=fields)
            j = self.i
            while j < len(self.s) and (self.s[j].islower() or self.s[j].isdigit() or self.s[j] in "()"):
                j += 1
            name = self.s[self.i : j]
            if name not in PRIMS:
                raise self.error(f"unknown type {name!r}")
            self.i = j
            return LayoutType(text=name, size=PRIMS[name][0])
        finally:
            self.depth -= 1


def parse_layout(s: str) -> ParsedLayout:
    """Parse a layout string. Never trusts it: bounded depth and sizes,
    malformed input raises LayoutError saying at which byte."""
    prefix, sep, body = s.partition(" ")
    if not sep:
        raise LayoutError(f"layout {s!r}: no architecture prefix")
    arch, sep, order = prefix.partition("/")
    if not sep or not arch or order not in ("le", "be"):
        raise LayoutError(f"layout {s!r}: prefix {prefix!r} is not ARCH/le or ARCH/be")
    p = _Parser(body)
    t = p.parse_type()
    if p.i != len(p.s):
        raise p.error("trailing text")
    return ParsedLayout(arch, order, t)


# ---- struct codec ----


class Codec:
    """Decodes and encodes one element type with a single precompiled
    struct.Struct (explicit padding, no native alignment).

    decode(buf, off) -> Python value; encode(value) -> bytes (padding zero).
    """

    def __init__(self, parsed: ParsedLayout) -> None:
        self.layout = parsed
        self.type = parsed.type
        self.size = parsed.type.size
        parts: List[str] = []
        pos = self._emit(parsed.type, 0, parts)
        if pos < self.size:
            parts.append(f"{self.size - pos}x")
        self.format = parsed.byte_order + "".join(parts)
        self.struct = struct.Struct(self.format)
        if self.struct.size != self.size:
            raise LayoutError(f"layout {self.type.text!r}: computed size {self.struct.size}, layout says {self.size}")

    def _emit(self, t: LayoutType, pos: int, parts: List[str]) -> int:
        """Append the format of t (which starts at byte pos) and return the
        position after it. Raises LayoutError for overlapping or out-of-size
        fields."""
        kind = t.kind
        if kind == "struct":
            start = pos
            for f in t.fields:
                at = start + f.off
                if at < pos or f.off + f.type.size > t.size:
                    raise LayoutError(f"field {f.name} at offset {f.off} overlaps or leaves its {t.size}-byte struct")
                if f.name == "_":
                    continue  # blank field: padding
                if at > pos:
                    parts.append(f"{at - pos}x")
                pos = self._emit(f.type, at, parts)
            end = start + t.size
            if pos < end:
                parts.append(f"{end - pos}x")
            return end
        if t.elem is not None:
            if t.length == 0:
                return pos
            if t.elem.text == "uint8":
                parts.append(f"{t.length}s")
                return pos + t.length
            if t.elem.elem is None and t.elem.kind != "struct":
                ch = PRIMS[t.elem.text][1]
                parts.append(ch * t.length if len(ch) > 1 else f"{t.length}{ch}")
                return pos + t.size
            if t.length > 1 << 16:
                raise LayoutError(f"array of {t.length} composite elements is too large to decode field by field")
            for _ in range(t.length):
                pos = self._emit(t.elem, pos, parts)
            return pos
        parts.append(PRIMS[t.text][1])
        return pos + t.size

    # decoding: rebuild the nested value from the flat tuple

    def decode(self, buf: Any, off: int = 0) -> Any:
        vals = iter(self.struct.unpack_from(buf, off))
        return self._build(self.type, vals)

    def decode_many(self, buf: Any, off: int, count: int) -> List[Any]:
        return [self.decode(buf, off + i * self.size) for i in range(count)]

    def _build(self, t: LayoutType, vals: Iterator[Any]) -> Any:
        kind = t.kind
        if kind == "struct":
            return {f.name: self._build(f.type, vals) for f in t.fields if f.name != "_"}
        if t.elem is not None:
            if t.length == 0:
                return b"" if t.elem.text == "uint8" else []
            if t.elem.text == "uint8":
                return next(vals)
            return [self._build(t.elem, vals) for _ in range(t.length)]
        if kind.startswith("complex"):
            re = next(vals)
            return complex(re, next(vals))
        return next(vals)

    # encoding: flatten a nested value into the tuple

    def encode(self, value: Any) -> bytes:
        flat: List[Any] = []
        self._flatten(self.type, value, flat, "T")
        return self.struct.pack(*flat)

    def _flatten(self, t: LayoutType, v: Any, out: List[Any], path: str) -> None:
        kind = t.kind
        if kind == "struct":
            for f in t.fields:
                if f.name == "_":
                    continue
                if isinstance(v, dict):
                    fv = v.get(f.name, _zero(f.type))
                else:
                    fv = getattr(v, f.name, _zero(f.type))
                self._flatten(f.type, fv, out, f"{path}.{f.name}")
            return
        if t.elem is not None:
            if t.length == 0:
                return
            if t.elem.text == "uint8":
                b = bytes(v)
                if len(b) > t.length:
                    raise ValueError(f"{path}: {len(b)} bytes do not fit in [{t.length}]uint8")
                out.append(b)
                return
            items = list(v)
            if len(items) > t.length:
                raise ValueError(f"{path}: {len(items)} elements do not fit in [{t.length}]")
            items += [_zero(t.elem)] * (t.length - len(items))
            for i, x in enumerate(items):
                self._flatten(t.elem, x, out, f"{path}[{i}]")
            return
        if kind.startswith("complex"):
            c = complex(v)
            out.extend((c.real, c.imag))
            return
        out.append(v)


def _zero(t: LayoutType) -> Any:
    if t.kind == "struct":
        return {}
    if t.elem is not None:
        return b"" if t.elem.text == "uint8" else []
    if t.kind.startswith("float"):
        return 0.0
    if t.kind.startswith("complex"):
        return 0j
    if t.kind == "bool":
        return False
    return 0


def codec_for(layout: str) -> Codec:
    """Parse layout and build its codec."""
    return Codec(parse_layout(layout))


# ---- numpy ----


def numpy_dtype(parsed: ParsedLayout) -> Any:
    """The structured numpy.dtype of the type: same itemsize, same field
    offsets, blank fields left out (they stay padding). Raises ImportError
    without numpy."""
    import numpy as np  # optional dependency

    bo = parsed.byte_order

    def dt(t: LayoutType) -> Any:
        kind = t.kind
        if kind == "struct":
            names, formats, offsets = [], [], []
            for f in t.fields:
                if f.name == "_":
                    continue
                names.append(f.name)
                formats.append(dt(f.type))
                offsets.append(f.off)
            return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": t.size})
        if t.elem is not None:
            return np.dtype((dt(t.elem), (t.length,)))
        return np.dtype(bo + PRIMS[t.text][2])

    d = dt(parsed.type)
    if d.itemsize != parsed.type.size:
        raise LayoutError(f"numpy itemsize {d.itemsize}, layout says {parsed.type.size}")
    return d
