#!/usr/bin/env python3
"""Interleaved runs of shmkit's own figures and the outside anchors.

    python3 scripts/anchors.py [-rounds N] [-anchors DIR] [-raw DIR]

from the root of a shmkit checkout, with ../shared/anchors beside it (or
-anchors naming that directory). Each round runs, one after another:

  1. ../shared/anchors/run floor limits peers   (C floor and rings, Boost, mq)
  2. scripts/protocol_floor.c, built with cc    (shmkit's own protocols in
                                                 bare C: their floor here)
  3. go run ./cmd/shmbench -json -only <the tracker's rows>
  4. ../shared/anchors/run shmipc -quick        (shmipc-go vs shmkit's rings)
  5. ../shared/anchors/run lmdb                 (first round only: slow, stable)

and then prints, for every figure, the median and the range over the
rounds, and the ratio of each shmkit figure to its anchor computed within
each round (median and range of those per-round ratios): the machines this
runs on swing 3-10x from one minute to the next, so only figures taken in the
same minutes are set side by side. The output is the table pasted into
docs/BENCHMARKS.md ("shmkit beside the anchors"). -raw keeps every run's
output.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

SHMBENCH_ROWS = (
    r"^(throughput/(queue-futex-natural/8B|msgq/8B|ring/(8|64)B|spin-ring/64B|chan/64B|ring-push-inplace/4096B)"
    r"|pingpong/(spin-word|spin-ring|ring-spin|ring-default)"
    r"|map/(get|put|go-map-get|go-map-put)-1M/"
    r"|mutex/(robust/1proc|go/1goroutine))"
)

# (label, shmkit figure, anchor figure, higher_is_better, goal text)
COMPARISONS = [
    ("Queue natural use, 8 B, Push per item in a child, Pop per item in the parent vs Boost message_queue 8 B",
     "shmbench:throughput/queue-futex-natural/8B:Mps", "anchor:boost_mq_8B_Mmsgs_per_s", True, ">= 3x"),
    ("Ring Push/Pop 64 B (shmbench throughput/ring) vs a bare per-item ring in Go (throughput/spin-ring: slot copy + tail store, tight spin)",
     "shmbench:throughput/ring/64B:Mps", "shmbench:throughput/spin-ring/64B:Mps", True, "-"),
    ("Ring Push/Pop 8 B (shmbench throughput/ring/8B) vs the same per-item protocol in bare C (protocol_floor ring_item_8B_seqcst)",
     "shmbench:throughput/ring/8B:Mps", "cfloor:ring_item_8B_seqcst", True, "-"),
    ("Ring Push/Pop 64 B (shmbench throughput/ring/64B) vs the same per-item protocol in bare C (protocol_floor ring_item_64B_seqcst)",
     "shmbench:throughput/ring/64B:Mps", "cfloor:ring_item_64B_seqcst", True, "-"),
    ("Not shmkit: the bare C per-item ring, 64 B, with release stores (ring_item_64B_release) vs shmipc-go flushing every 64",
     "cfloor:ring_item_64B_release", "shmipc:shmipc_thr64_flush64_msgs_per_s", True, "-"),
    ("Ring Push/Pop 64 B (shmipcvs shmkit_thr64_push) vs shmipc-go flushing every 64 (shmipc_thr64_flush64)",
     "shmipc:shmkit_thr64_push_msgs_per_s", "shmipc:shmipc_thr64_flush64_msgs_per_s", True, ">= 1.2x"),
    ("Ring Claim/Publish 64 B, 64 at a time (shmkit_thr64_claim64) vs shmipc-go flushing every 64",
     "shmipc:shmkit_thr64_claim64_msgs_per_s", "shmipc:shmipc_thr64_flush64_msgs_per_s", True, "-"),
    ("Ring Push 4 KiB per item, reader checks both ends in place (shmbench throughput/ring-push-inplace/4096B) vs shmipc-go batched, whose reader does the same (shmipc_thr4k_flush64)",
     "shmbench:throughput/ring-push-inplace/4096B:Mps", "shmipc:shmipc_thr4k_flush64_msgs_per_s", True, ">= 1.5x"),
    ("Ring Push/Pop 4 KiB, Pop copies every byte out (shmkit_thr4k_push) vs shmipc-go batched (shmipc_thr4k_flush64)",
     "shmipc:shmkit_thr4k_push_msgs_per_s", "shmipc:shmipc_thr4k_flush64_msgs_per_s", True, "-"),
    ("Ring ping-pong RTT, untimed mean, default policy (shmbench pingpong/ring-default mean: no clock read per round trip) vs C spin floor (floor_spin_rtt_ns, an untimed mean too)",
     "shmbench:pingpong/ring-default:mean", "anchor:floor_spin_rtt_ns", False, "<= 1.3x"),
    ("Ring ping-pong RTT, untimed mean, SpinOnly (shmbench pingpong/ring-spin) vs C spin floor",
     "shmbench:pingpong/ring-spin:mean", "anchor:floor_spin_rtt_ns", False, "-"),
    ("Ring ping-pong RTT p50, default policy (each round trip timed: one clock read in it) vs C spin floor",
     "shmbench:pingpong/ring-default:p50", "anchor:floor_spin_rtt_ns", False, "-"),
    ("Ring ping-pong RTT, untimed mean, default policy vs a bare C ring pair (protocol_floor ring_pair_rtt_ns: slot + tail per hand-off)",
     "shmbench:pingpong/ring-default:mean", "cfloor:ring_pair_rtt_ns", False, "-"),
    ("Not shmkit: the bare C ring pair RTT vs the C spin floor (one line per hand-off)",
     "cfloor:ring_pair_rtt_ns", "anchor:floor_spin_rtt_ns", False, "-"),
    ("Bare ring pair RTT, mean (shmbench pingpong/spin-ring: slot + tail per hand-off, nothing else) vs C spin floor",
     "shmbench:pingpong/spin-ring:mean", "anchor:floor_spin_rtt_ns", False, "-"),
    ("Ring ping-pong RTT, best 1k, default policy vs the bare Go ring pair's best 1k (shmbench pingpong/spin-ring: the same protocol in plain Go, a reference, not a floor)",
     "shmbench:pingpong/ring-default:best", "shmbench:pingpong/spin-ring:best", False, "-"),
    ("Queue natural use, 8 B (as above) vs shmqueue's claim protocol in bare C, one producer and one consumer process, sequence words stored with release stores as shmqueue's light wakes do (protocol_floor vyukov_8B_release)",
     "shmbench:throughput/queue-futex-natural/8B:Mps", "cfloor:vyukov_8B_release", True, "-"),
    ("Not shmkit: that bare C queue protocol with release stores vs with a CAS of each sequence word (vyukov_8B_casseq)",
     "cfloor:vyukov_8B_release", "cfloor:vyukov_8B_casseq", True, "-"),
    ("Robust Mutex lock+unlock (+ increment), uncontended, ns (shmbench mutex/robust/1proc) vs Boost interprocess_mutex",
     "shmbench:mutex/robust/1proc:ns", "anchor:boost_mutex_lock_unlock_ns", False, "<= 1.5x"),
    ("Map Get, 1 Mi keys 8 B -> 64 B, random (shmbench map/get-1M) vs Go map, same process",
     "shmbench:map/get-1M/1proc:Mps", "shmbench:map/go-map-get-1M/1goroutine:Mps", True, ">= 1.0x"),
    ("Map Put, same (shmbench map/put-1M) vs Go map put",
     "shmbench:map/put-1M/1proc:Mps", "shmbench:map/go-map-put-1M/1goroutine:Mps", True, ">= 0.5x"),
    ("Map Get (shmbench map/get-1M) vs LMDB get on tmpfs (first round)",
     "shmbench:map/get-1M/1proc:Mps", "anchor:lmdb_get_Mops", True, "-"),
]


def run(cmd, raw, name, tries=1):
    t0 = time.time()
    for attempt in range(tries):
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode == 0:
            break
        sys.stderr.write(p.stdout[-4000:])
        if attempt + 1 < tries:
            sys.stderr.write(f"anchors.py: {' '.join(cmd)}: exit {p.returncode}; running it again\n")
    if raw:
        with open(os.path.join(raw, name), "w") as f:
            f.write(p.stdout)
    if p.returncode != 0:
        sys.exit(f"anchors.py: {' '.join(cmd)}: exit {p.returncode}")
    sys.stderr.write(f"  {name}: {time.time() - t0:.0f}s\n")
    return p.stdout


def parse_anchor(out, figs, prefix="anchor:"):
    # "name value ..." or "PERF name value ..."
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "PERF":
            f = f[1:]
        if len(f) >= 2 and re.match(r"^[a-z][A-Za-z0-9_]*$", f[0]):
            try:
                figs[prefix + f[0]] = float(f[1])
            except ValueError:
                pass


def parse_shmipc(out, figs):
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3 and f[0] == "PEER" and not f[1].endswith(("_min", "_max")):
            v = float(f[2])
            if f[1].endswith("_msgs_per_s"):
                v /= 1e6  # M/s, like the other rates
            figs["shmipc:" + f[1]] = v


def parse_shmbench(out, figs):
    rep = json.loads(out[out.index("{"):])
    for r in rep["rows"]:
        if r.get("error") or r.get("skipped"):
            continue
        n = r["name"]
        figs[f"shmbench:{n}:Mps"] = r["per_sec"] / 1e6
        if r["per_sec"]:
            figs[f"shmbench:{n}:ns"] = 1e9 / r["per_sec"]
        rtt = r.get("rtt_ns") or {}
        if rtt.get("mean"):
            figs[f"shmbench:{n}:mean"] = rtt["mean"]
        if rtt.get("p50"):
            figs[f"shmbench:{n}:p50"] = rtt["p50"]
        if rtt.get("best_chunk_mean"):
            figs[f"shmbench:{n}:best"] = rtt["best_chunk_mean"]


def fmt(x):
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def spread(xs, f=fmt):
    if not xs:
        return "-"
    return f"{f(statistics.median(xs))} [{f(min(xs))}-{f(max(xs))}]"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-rounds", type=int, default=5)
    ap.add_argument("-anchors", default=os.path.join("..", "shared", "anchors"))
    ap.add_argument("-raw", default="")
    a = ap.parse_args()
    anchors = os.path.join(a.anchors, "run")
    if not os.access(anchors, os.X_OK):
        sys.exit(f"anchors.py: no anchors at {anchors} (see -anchors)")
    if a.raw:
        os.makedirs(a.raw, exist_ok=True)
    tmp = os.environ.get("TMPDIR", "/tmp")
    shmbench = os.path.join(tmp, "shmbench-anchors")
    floor = os.path.join(tmp, "shmkit-protocol-floor")
    subprocess.run(["go", "build", "-o", shmbench, "./cmd/shmbench"], check=True)
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-o", floor, "scripts/protocol_floor.c"], check=True)
    rounds = []
    try:
        for i in range(a.rounds):
            sys.stderr.write(f"round {i + 1}/{a.rounds}\n")
            figs = {}
            parse_anchor(run([anchors, "floor", "limits", "peers"], a.raw, f"r{i}-anchors"), figs)
            parse_anchor(run([floor], a.raw, f"r{i}-protocol-floor"), figs, "cfloor:")
            parse_shmbench(run([shmbench, "-json", "-only", SHMBENCH_ROWS], a.raw, f"r{i}-shmbench"), figs)
            # shmipc-go now and then leaves its shared-memory path during
            # warm-up (fallback writes), which its harness refuses to time:
            # one more try.
            parse_shmipc(run([anchors, "shmipc", "-quick"], a.raw, f"r{i}-shmipc", tries=2), figs)
            if i == 0:
                parse_anchor(run([anchors, "lmdb"], a.raw, "r0-lmdb"), figs)
            rounds.append(figs)
    finally:
        os.remove(shmbench)
        os.remove(floor)

    print(f"{len(rounds)} interleaved rounds, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          "median [min-max]; ratios are computed within each round, then summarized.\n")
    print("| measure | shmkit | anchor | shmkit vs anchor | goal |")
    print("|---|---|---|---|---|")
    for label, mine, theirs, higher, goal in COMPARISONS:
        xs = [r[mine] for r in rounds if mine in r]
        ys = [r[theirs] for r in rounds if theirs in r]
        # Rates: shmkit / anchor (2x is twice the anchor's rate). Times:
        # shmkit / anchor too (1.8x is 1.8 times the anchor's time).
        ratios = [r[mine] / r[theirs] for r in rounds if mine in r and theirs in r and r[theirs] > 0]
        unit = "M/s" if higher else "ns"
        print(f"| {label} | {spread(xs)} {unit} | {spread(ys)} {unit} | "
              f"{spread(ratios, lambda x: f'{x:.2f}x')} | {goal} |")


if __name__ == "__main__":
    main()
