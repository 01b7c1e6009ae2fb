"""Build the native helper library that shmkit.native loads with ctypes.

    python3 -m shmkit.build [--out PATH] [--cc gcc]

compiles shmkit/_native.c (C11 atomics and futex calls on shared words,
plus the implementation of include/shmkit.h when it is found: set
SHMKIT_INCLUDE, or run from this repository) with gcc -O2 -std=c11 -shared
-fPIC and prints the library's path. Without
--out it goes to the cache ($XDG_CACHE_HOME/shmkit or ~/.cache/shmkit),
named by a hash of the source, which is where shmkit.native looks (and
what it builds on first use when gcc is there).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Optional

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_native.c")


def header_dir() -> Optional[str]:
    """The directory holding shmkit.h: $SHMKIT_INCLUDE, or include/ of the
    repository this package sits in; None when there is none."""
    for d in (os.environ.get("SHMKIT_INCLUDE"), os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(SOURCE))), "include")):
        if d and os.path.isfile(os.path.join(d, "shmkit.h")):
            return d
    return None


def cache_path() -> str:
    h = hashlib.sha256()
    with open(SOURCE, "rb") as f:
        h.update(f.read())
    inc = header_dir()
    if inc:
        with open(os.path.join(inc, "shmkit.h"), "rb") as f:
            h.update(f.read())
    digest = h.hexdigest()[:16]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "shmkit", f"libshmkitpy-{digest}.so")


def build(out: Optional[str] = None, cc: Optional[str] = None) -> str:
    """Compile the library to out (default: the cache path) and return it."""
    out = out or cache_path()
    cc = cc or os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise RuntimeError("no C compiler (gcc) to build shmkit's native library")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    # Build beside the target and rename: concurrent builders never see a
    # half-written library.
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=os.path.dirname(os.path.abspath(out)))
    os.close(fd)
    try:
        cmd = [cc, "-O2", "-std=c11", "-Wall", "-shared", "-fPIC", "-o", tmp, SOURCE]
        inc = header_dir()
        if inc:
            cmd[1:1] = ["-DSHMKIT_PY_HEADER", "-I", inc]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m shmkit.build", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="where to write the library (default: the cache)")
    ap.add_argument("--cc", help="C compiler (default: $CC, gcc, cc)")
    a = ap.parse_args(argv)
    try:
        print(build(a.out, a.cc))
    except RuntimeError as e:
        print(f"shmkit.build: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
