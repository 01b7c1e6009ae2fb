#!/usr/bin/env python3
"""Interleaved A/B runs of shmbench builds: the way to tell whether a change
moved a figure on a machine whose figures swing 3-10x from one minute to the
next.

    go build -o /tmp/sb-before ./cmd/shmbench    # at the base commit
    go build -o /tmp/sb-after ./cmd/shmbench     # with the change
    python3 scripts/abbench.py -rounds 6 -only 'throughput/ring/|pingpong/ring' \\
        /tmp/sb-before /tmp/sb-after

Each round runs every build once, in the order given, with -json -only
REGEX. It prints, per row, each build's median [min-max] over the rounds:
M items (or operations) per second, or for ping-pong rows the p50
round trip in ns (the mean, for the baseline rows that have no p50), and
for rows that have both, a second line with the untimed mean (what the C
anchors are set against). Quote medians of several rounds, never one run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-rounds", type=int, default=5)
    ap.add_argument("-only", required=True, help="shmbench -only REGEX")
    ap.add_argument("builds", nargs="+", help="shmbench binaries to compare")
    a = ap.parse_args()
    res = {}  # row -> build -> [figure per round]
    for r in range(a.rounds):
        sys.stderr.write(f"round {r + 1}/{a.rounds}\n")
        for b in a.builds:
            p = subprocess.run([b, "-json", "-only", a.only], capture_output=True, text=True, timeout=600)
            if p.returncode != 0:
                sys.exit(f"abbench.py: {b}: exit {p.returncode}\n{p.stderr[-2000:]}")
            rep = json.loads(p.stdout)
            for row in rep["rows"]:
                if row.get("skipped") or row.get("error"):
                    continue
                rtt = row.get("rtt_ns") or {}
                v = (rtt.get("p50") or rtt.get("mean")) if rtt else row["per_sec"] / 1e6
                res.setdefault(row["name"], {}).setdefault(b, []).append(v)
                if rtt.get("p50") and rtt.get("mean"):
                    # The untimed mean too: what the C anchors are set against.
                    res.setdefault(row["name"] + " mean", {}).setdefault(b, []).append(rtt["mean"])
    for name, by in res.items():
        unit = "ns" if name.startswith("pingpong/") else "M/s"
        cells = []
        for b in a.builds:
            xs = by.get(b, [])
            if xs:
                cells.append(f"{os.path.basename(b)} {statistics.median(xs):.2f} [{min(xs):.2f}-{max(xs):.2f}]")
        print(f"{name:36} {unit:7} " + " | ".join(cells))


if __name__ == "__main__":
    main()
