#!/usr/bin/env python3
"""Check that a cargo test run ran every test, from libtest's own output.

usage: check_test_log.py [--sources tests|doctests] LOG...

LOG is the standard output of `cargo test` (libtest's `running N tests`,
`test NAME ... ok` and `test result:` lines; scripts/test keeps one per
cargo invocation). Each test binary's block must have run all of its N
tests and passed them: nothing failed, ignored or filtered out, and the
block finished with its `test result:` line.

Why not a fixed floor: a floor must be raised by hand as tests are added,
so it always lags (CI once accepted 100 of about 380 tests) and cannot see
one binary vanish among many. The number that must have run is instead
read from the sources, so it follows every test added or removed:

--sources tests     every `#[test]` / `#[tokio::test]` function under
                    crates/*/src, crates/*/tests and crates/*/examples
                    must have passed in LOG, counted by name (a name
                    defined twice must have run twice). The workspace run
                    of scripts/test compiles every such test (a test that
                    only exists without default features would have to
                    be counted from that build's log instead).
--sources doctests  every Rust code block in the doc comments of a
                    library crate's sources must have run, counted per
                    file (doc tests are named after their file).

So a test binary or doc-test crate that stops running (a `#![cfg]` that
is never true, `test = false` or `doctest = false` in a Cargo.toml, a file
cargo no longer finds) makes this check fail and name the missing tests.
Tests written with other attributes (none today) are not counted.

Exits 0 and prints a summary when all holds; prints what is wrong and
exits 1 otherwise.
"""
import argparse
import collections
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RUNNING = re.compile(r"^running (\d+) tests?$")
TEST = re.compile(r"^test (.+?) \.\.\. (ok|FAILED|ignored\b.*)$")
RESULT = re.compile(
    r"^test result: (ok|FAILED)\. (\d+) passed; (\d+) failed; (\d+) ignored; "
    r"(\d+) measured; (\d+) filtered out"
)

TEST_ATTR = re.compile(r"^\s*#\[(tokio::)?test(\s*\(.*\))?\]\s*$")
FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(async\s+)?(unsafe\s+)?fn\s+([A-Za-z_]\w*)")
DOC_FENCE = re.compile(r"^\s*//[/!]\s*(```+)\s*(.*?)\s*$")
# Code-block attributes under which rustdoc treats a block as a Rust test;
# any other word (text, sh, json) makes it plain text.
RUST_BLOCK_WORDS = {
    "", "rust", "no_run", "should_panic", "compile_fail", "ignore",
    "test_harness", "standalone_crate",
}


class Block:
    def __init__(self, where, expected):
        self.where = where
        self.expected = expected
        self.tests = []
        self.result = None


def parse(path):
    """The blocks of one log: one per test binary or doc-test crate."""
    blocks, current = [], None
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            m = RUNNING.match(line)
            if m:
                current = Block(f"{os.path.basename(path)}:{number}", int(m.group(1)))
                blocks.append(current)
                continue
            if current is None:
                continue
            m = TEST.match(line)
            if m:
                current.tests.append((m.group(1), m.group(2)))
                continue
            m = RESULT.match(line)
            if m:
                current.result = {
                    "status": m.group(1),
                    "passed": int(m.group(2)),
                    "failed": int(m.group(3)),
                    "ignored": int(m.group(4)),
                    "filtered": int(m.group(6)),
                }
                current = None
    return blocks


def check_blocks(path, blocks, problems):
    """Every block ran all its tests and passed them."""
    if not blocks:
        problems.append(f"{path}: no test suite ran")
    for b in blocks:
        r = b.result
        if r is None:
            problems.append(f"{b.where}: the binary stopped before its `test result:` line")
            continue
        not_ok = [f"{name} ({status})" for name, status in b.tests if status != "ok"]
        if r["status"] != "ok" or r["failed"]:
            problems.append(f"{b.where}: {r['failed']} failed: {', '.join(not_ok)}")
        if r["ignored"]:
            problems.append(
                f"{b.where}: {r['ignored']} ignored (an ignored test never runs): "
                + ", ".join(not_ok)
            )
        if r["filtered"]:
            problems.append(f"{b.where}: {r['filtered']} tests filtered out")
        if r["passed"] != b.expected:
            problems.append(f"{b.where}: {b.expected} tests listed, {r['passed']} passed")
        ok = sum(1 for _, status in b.tests if status == "ok")
        if ok != r["passed"]:
            problems.append(
                f"{b.where}: {ok} `... ok` lines but {r['passed']} passed "
                "(is something else writing to libtest's stdout?)"
            )


def rust_files(*dirs):
    for d in dirs:
        for root, subdirs, files in os.walk(d):
            subdirs[:] = sorted(s for s in subdirs if s != "node_modules")
            for name in sorted(files):
                if name.endswith(".rs"):
                    yield os.path.join(root, name)


def crates():
    base = os.path.join(ROOT, "crates")
    return [os.path.join(base, c) for c in sorted(os.listdir(base))
            if os.path.isfile(os.path.join(base, c, "Cargo.toml"))]


def source_tests():
    """Test function name -> the files that define one (once per definition)."""
    found = collections.defaultdict(list)
    for crate in crates():
        dirs = [os.path.join(crate, d) for d in ("src", "tests", "examples")]
        for path in rust_files(*dirs):
            pending = False
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if TEST_ATTR.match(line):
                        pending = True
                        continue
                    if not pending:
                        continue
                    # The function follows its attributes (which may span
                    # lines); a `fn $name` in a macro is not counted.
                    m = FN.match(line)
                    if m:
                        found[m.group(5)].append(os.path.relpath(path, ROOT))
                        pending = False
                    elif re.search(r"\bfn\b", line):
                        pending = False
    return found


def source_doctests():
    """Source file (relative to the root) -> its number of Rust doc-comment blocks."""
    counts = collections.Counter()
    for crate in crates():
        src = os.path.join(crate, "src")
        if not os.path.isfile(os.path.join(src, "lib.rs")):
            continue  # rustdoc tests libraries only
        for path in rust_files(src):
            rel = os.path.relpath(path, src)
            if rel == "main.rs" or rel.startswith("bin" + os.sep):
                continue
            inside = False
            with open(path, encoding="utf-8") as f:
                for line in f:
                    m = DOC_FENCE.match(line)
                    if not m:
                        continue
                    if inside:
                        inside = False
                        continue
                    inside = True
                    words = [w.strip() for w in m.group(2).split(",")]
                    if all(w in RUST_BLOCK_WORDS or re.fullmatch(r"edition\d+", w) for w in words):
                        counts[os.path.relpath(path, ROOT)] += 1
    return counts


def passed_names(blocks):
    return [name for b in blocks for name, status in b.tests if status == "ok"]


def check_tests(blocks, problems):
    defined = source_tests()
    # `module::tests::name`, or `... - should panic` for a #[should_panic] test.
    ran = collections.Counter(
        name.removesuffix(" - should panic").split("::")[-1] for name in passed_names(blocks)
    )
    missing = []
    for name, files in sorted(defined.items()):
        if ran[name] < len(files):
            missing.append(f"  {name} (defined in {', '.join(files)}; passed {ran[name]} time(s))")
    total = sum(len(files) for files in defined.values())
    if total == 0:
        problems.append("found no test function in the sources: is this the workspace?")
    if missing:
        problems.append(
            f"{len(missing)} test(s) in the sources did not run and pass:\n" + "\n".join(missing)
        )
    return f"{total} test functions in the sources"


def check_doctests(blocks, problems):
    defined = source_doctests()
    ran = collections.Counter(name.split(" - ")[0] for name in passed_names(blocks))
    missing = [
        f"  {path}: {count} Rust block(s) in doc comments, {ran[path]} doc test(s) passed"
        for path, count in sorted(defined.items())
        if ran[path] < count
    ]
    if missing:
        problems.append("doc tests did not run:\n" + "\n".join(missing))
    return f"{sum(defined.values())} Rust blocks in the doc comments"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", choices=["tests", "doctests"])
    parser.add_argument("logs", nargs="+")
    args = parser.parse_args()
    problems, blocks = [], []
    for path in args.logs:
        these = parse(path)
        check_blocks(path, these, problems)
        blocks += these
    passed = len(passed_names(blocks))
    summary = f"{len(blocks)} suites, {passed} tests passed"
    if args.sources == "tests":
        summary += "; " + check_tests(blocks, problems) + ", every one ran"
    elif args.sources == "doctests":
        summary += "; " + check_doctests(blocks, problems) + ", every one ran"
    logs = " ".join(os.path.basename(p) for p in args.logs)
    if problems:
        print(f"check_test_log: {logs}: NOT every test ran and passed:", file=sys.stderr)
        for p in problems:
            print(f"- {p}", file=sys.stderr)
        sys.exit(1)
    print(f"check_test_log: {logs}: {summary}")


if __name__ == "__main__":
    main()
