#!/usr/bin/env python3
"""Prints a Markdown table per criterion group from target/criterion.

For each benchmark: criterion's median time per iteration, the ratio to
vitals (the first function, in name order, whose name starts with "vitals")
and the ratio to the fastest peer (the fastest function whose name does not
start with "vitals"; "empty loop" baselines are left out of that). Groups
with several vitals variants or special baselines (contended, batch) need
their ratios read with care; BENCHMARKS.md states them explicitly.

Usage: python3 crates/vitals-bench/summarize.py [target/criterion]
"""

import json
import pathlib
import sys


def load(root):
    groups = {}
    for bench in sorted(root.glob("*/**/new/benchmark.json")):
        meta = json.loads(bench.read_text())
        est = json.loads((bench.parent / "estimates.json").read_text())
        group = meta["group_id"]
        name = meta["function_id"] or ""
        if meta.get("value_str"):
            name = f"{name}/{meta['value_str']}" if name else meta["value_str"]
        groups.setdefault(group, []).append((name, est["median"]["point_estimate"]))
    return groups


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.2f} ns"


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
    for group, rows in sorted(load(root).items()):
        vitals = next((ns for n, ns in rows if n.startswith("vitals")), None)
        peers = [ns for n, ns in rows if not n.startswith("vitals") and "empty loop" not in n]
        fastest = min(peers) if peers else None
        print(f"\n### {group}\n")
        print("| library | median | × vitals | × fastest peer |")
        print("|---|---:|---:|---:|")
        for name, ns in sorted(rows, key=lambda r: r[1]):
            rv = f"{ns / vitals:.2f}" if vitals else "–"
            rp = f"{ns / fastest:.2f}" if fastest else "–"
            print(f"| {name} | {fmt_ns(ns)} | {rv} | {rp} |")


if __name__ == "__main__":
    main()
