#!/usr/bin/env python3
"""Parse an exposition with prometheus_client's real parsers and compare it
with the samples a test recorded.

usage: check_exposition.py text|openmetrics EXPOSITION_FILE EXPECTED_JSON

EXPECTED_JSON: {"samples": [{"name": ..., "labels": {...}, "value": ...}],
                "types": {"family": "counter" | "gauge" | "histogram"}}
Values may be numbers or the strings "NaN", "+Inf", "-Inf".
Exits 0 when every expected sample is present with an equal value and no
unexpected sample exists; prints what differs and exits 1 otherwise.
"""
import json
import math
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text


def to_float(v):
    if isinstance(v, str):
        return float(v.replace("Inf", "inf"))
    return float(v)


def same(a, b):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b:
        return True
    return abs(a - b) <= 1e-12 * max(abs(a), abs(b))


def main():
    fmt, path, expected_path = sys.argv[1:4]
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    with open(expected_path, encoding="utf-8") as f:
        expected = json.load(f)
    parser = parse_om if fmt == "openmetrics" else parse_text
    got = {}
    types = {}
    for family in parser(text):
        types[family.name] = family.type
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            if key in got:
                print(f"duplicate sample {key}")
                return 1
            got[key] = s.value
    errors = []
    want = {}
    for s in expected["samples"]:
        key = (s["name"], tuple(sorted(s["labels"].items())))
        want[key] = to_float(s["value"])
    for key, value in want.items():
        if key not in got:
            errors.append(f"missing sample {key}")
        elif not same(got[key], value):
            errors.append(f"sample {key}: parsed {got[key]!r}, recorded {value!r}")
    for key in got:
        if key not in want:
            errors.append(f"unexpected sample {key} = {got[key]!r}")
    for name, kind in expected.get("types", {}).items():
        if types.get(name) != kind:
            errors.append(f"family {name}: parsed type {types.get(name)!r}, want {kind!r}")
    for e in errors:
        print(e)
    print(f"{fmt}: {len(got)} samples parsed, {len(want)} expected, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
