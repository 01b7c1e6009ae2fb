"""Command line: look at shmkit segments from Python.

    python3 -m shmkit dump SPEC            the header, types and contents as JSON
    python3 -m shmkit follow SPEC [-n N] [--oldest] [--timeout S]
                                           print a bus's messages, one JSON line each
    python3 -m shmkit consume SPEC [-n N] [--timeout S]
                                           consume a ring (or join a bus) through
                                           the C library, one JSON line each

JSON rendering: [N]uint8 as a string (trailing NULs cut; hex if not UTF-8),
complex numbers as [re, im].
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, List, Optional

from . import structures
from .segment import KIND_BUS, KIND_MAP, KIND_RING, KIND_VALUE, ShmkitError, open_segment


def plain(v: Any) -> Any:
    """A decoded value made JSON-friendly."""
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        b = bytes(v).rstrip(b"\x00")
        try:
            return b.decode()
        except UnicodeDecodeError:
            return b.hex()
    if isinstance(v, complex):
        return [v.real, v.imag]
    if isinstance(v, structures.Holder):
        return {"pid": v.pid, "start": v.start, "alive": v.alive}
    return v


def dump(spec: str) -> dict:
    seg = open_segment(spec)
    h = seg.header
    out: dict = {
        "spec": spec,
        "kind": h.kind_name,
        "capacity": h.capacity,
        "creator_pid": h.creator_pid,
        "types": [{"name": t.name, "layout": t.layout, "size": t.size, "struct": t.struct_format} for t in seg.types],
    }
    if h.kind == KIND_VALUE:
        with structures.Value(seg) as v:
            out["value"] = plain(v.read())
    elif h.kind == KIND_RING:
        with structures.Ring(seg) as r:
            out["stats"] = plain(r.stats())
            first, items = r.peek()
            out["first"] = first
            out["items"] = plain(items)
    elif h.kind == KIND_MAP:
        with structures.Map(seg) as m:
            out["len"] = len(m)
            out["items"] = [[plain(k), plain(v)] for k, v in m.snapshot()]
    elif h.kind == KIND_BUS:
        with structures.Bus(seg) as b:
            out["stats"] = plain(b.stats())
    else:
        seg.close()
    return out


def follow(spec: str, n: Optional[int], oldest: bool, timeout: float) -> int:
    with structures.Bus.open(spec) as bus:
        rd = bus.reader(from_oldest=oldest)
        got = print_bus(rd, n, timeout)
        print(json.dumps({"done": got, "missed": rd.missed}), flush=True)
    return 0


def print_bus(sub, n: Optional[int], timeout: float) -> int:
    """Prints "ready", then up to n messages of bus subscriber sub (all,
    if n is None) as JSON lines, a line for each lap it is told of, until
    the bus is closed and drained; returns how many it printed."""
    print(json.dumps({"ready": True, "cursor": sub.cursor}), flush=True)
    got = 0
    while n is None or got < n:
        try:
            m = sub.next(timeout=timeout)
        except structures.Lagged as e:
            print(json.dumps({"lagged": e.missed}), flush=True)
            continue
        except structures.Closed:
            break
        print(json.dumps(plain(m)), flush=True)
        got += 1
    return got


def consume(spec: str, n: Optional[int], timeout: float) -> int:
    from . import native

    with open_segment(spec) as seg:
        kind, kind_name = seg.kind, seg.header.kind_name
    if kind == KIND_RING:
        with native.RingConsumer.open(spec) as c:
            print(json.dumps({"ready": True}), flush=True)
            got = 0
            while n is None or got < n:
                try:
                    m = c.pop(timeout=timeout)
                except TimeoutError:
                    break
                print(json.dumps(plain(m)), flush=True)
                got += 1
    elif kind == KIND_BUS:
        with native.BusSubscriber.open(spec) as s:
            got = print_bus(s, n, timeout)
    else:
        raise SystemExit(f"{spec}: a {kind_name} cannot be consumed")
    print(json.dumps({"done": got}), flush=True)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m shmkit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("spec")
    f = sub.add_parser("follow")
    f.add_argument("spec")
    f.add_argument("-n", type=int)
    f.add_argument("--oldest", action="store_true")
    f.add_argument("--timeout", type=float, default=30.0)
    c = sub.add_parser("consume")
    c.add_argument("spec")
    c.add_argument("-n", type=int)
    c.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "dump":
            print(json.dumps(dump(a.spec)))
            return 0
        if a.cmd == "follow":
            return follow(a.spec, a.n, a.oldest, a.timeout)
        return consume(a.spec, a.n, a.timeout)
    except (ShmkitError, OSError, ValueError, NotImplementedError) as e:
        print(f"shmkit: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
