"""shmkit for Python: open shmkit segments made by Go programs and read
them (Value, Ring, Map, Bus) with the standard library alone; consume from
rings and buses through the C header (shmkit.native).

    import shmkit
    with shmkit.Map.open("posix:/prices") as m:
        print(m.get(42), len(m))

See python/README.md (or the project README's "From C and Python").
"""

from .layout import Codec, LayoutError, ParsedLayout, codec_for, numpy_dtype, parse_layout
from .segment import (
    KIND_BUS,
    KIND_MAP,
    KIND_RING,
    KIND_VALUE,
    BadMagic,
    Corrupt,
    Header,
    NotReady,
    Segment,
    ShmkitError,
    TooSmall,
    TypeInfo,
    TypeMismatch,
    Untrusted,
    VersionError,
    open_segment,
)
from .structures import Bus, BusReader, Busy, Closed, Holder, Lagged, Map, Ring, Value

__all__ = [
    "Bus",
    "BusReader",
    "Busy",
    "BadMagic",
    "Closed",
    "Codec",
    "Corrupt",
    "Header",
    "Holder",
    "KIND_BUS",
    "KIND_MAP",
    "KIND_RING",
    "KIND_VALUE",
    "Lagged",
    "LayoutError",
    "Map",
    "NotReady",
    "ParsedLayout",
    "Ring",
    "Segment",
    "ShmkitError",
    "TooSmall",
    "TypeInfo",
    "TypeMismatch",
    "Untrusted",
    "Value",
    "VersionError",
    "codec_for",
    "numpy_dtype",
    "open_segment",
    "parse_layout",
]

__version__ = "0.1.0"
