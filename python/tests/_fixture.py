"""Shared test helpers: the Go fixture program (python/internal/gofixture)
that makes real segments, and unique segment names.

The Go test (python/interop_test.go) builds the program and passes its path
in SHMKIT_GOFIXTURE. Run standalone (python3 -m unittest discover -s
python/tests), the tests build it with `go build` when Go is installed and
skip otherwise.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from typing import Any, List

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.dirname(HERE)
REPO = os.path.dirname(PYDIR)
if PYDIR not in sys.path:
    sys.path.insert(0, PYDIR)

_counter = itertools.count()
_binary: str | None = None
_build_error: str | None = None


def fixture_binary() -> str:
    """Path of the gofixture binary, building it if needed; raises
    unittest.SkipTest when there is no Go toolchain to build it with."""
    global _binary, _build_error
    env = os.environ.get("SHMKIT_GOFIXTURE")
    if env:
        return env
    if _binary:
        return _binary
    if _build_error:
        raise unittest.SkipTest(_build_error)
    go = shutil.which("go") or ("/usr/local/go/bin/go" if os.path.exists("/usr/local/go/bin/go") else None)
    if not go:
        _build_error = "no Go toolchain to build python/internal/gofixture (set SHMKIT_GOFIXTURE)"
        raise unittest.SkipTest(_build_error)
    out = os.path.join(tempfile.mkdtemp(prefix="shmkit-py-"), "gofixture")
    r = subprocess.run([go, "build", "-o", out, "./python/internal/gofixture"], cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"go build gofixture failed:\n{r.stderr}")
    _binary = out
    return out


def unique_spec(prefix: str) -> str:
    # shmkit-test-*: CI fails when tests leave such segments behind.
    return f"posix:/shmkit-test-py{prefix}-{os.getpid()}-{next(_counter)}"


def remove(spec: str) -> None:
    name = spec.split(":", 1)[1].lstrip("/")
    try:
        os.unlink("/dev/shm/" + name)
    except FileNotFoundError:
        pass


def run_fixture(*args: Any) -> Any:
    """Run gofixture to completion and return its last JSON line."""
    r = subprocess.run([fixture_binary(), *map(str, args)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"gofixture {' '.join(map(str, args))} failed: {r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


class Child:
    """A gofixture process running beside the test (a live publisher)."""

    def __init__(self, *args: Any) -> None:
        self.args = list(map(str, args))
        self.p = subprocess.Popen([fixture_binary(), *self.args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def read_json(self) -> Any:
        assert self.p.stdout is not None
        line = self.p.stdout.readline()
        if not line:
            self.p.wait(10)
            raise RuntimeError(f"gofixture {' '.join(self.args)} exited {self.p.returncode}: {self.p.stderr.read() if self.p.stderr else ''}")
        return json.loads(line)

    def send(self, line: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def finish(self, timeout: float = 60) -> List[Any]:
        out, err = self.p.communicate(timeout=timeout)
        if self.p.returncode != 0:
            raise RuntimeError(f"gofixture {' '.join(self.args)} exited {self.p.returncode}: {err}")
        return [json.loads(l) for l in out.splitlines() if l.strip()]

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            if f:
                f.close()


def have_numpy() -> bool:
    try:
        import numpy  # noqa: F401
    except ImportError:
        return False
    return True


def go_point(p: dict) -> dict:
    """A decoded Point in the fixture's JSON shape."""
    return {
        "X": p["X"],
        "Y": p["Y"],
        "Name": p["Name"].rstrip(b"\x00").decode(),
        "Tags": p["Tags"],
        "Flag": p["Flag"],
        "Z": [p["Z"].real, p["Z"].imag],
    }


def item(i: int) -> dict:
    """The fixture's item(i)."""
    return {"Seq": i, "Val": i * 3 - 7, "Sum": i / 2}
