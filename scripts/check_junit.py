#!/usr/bin/env python3
"""Reads `tracecheck analyze --junit` output with Python's junitparser (what many CI reporters
use) and checks it against the summary.json of the same analysis: one suite, one `verdict` test
case per cell, one per comparison, and the failure/skipped counts the verdicts imply.

usage: check_junit.py JUNIT.xml SUMMARY.json   (exit 0 when consistent, 1 otherwise)
"""

import json
import sys

from junitparser import Failure, JUnitXml, Skipped


def expected(summary):
    """(tests, failures, skipped) as the gate would judge the cells."""
    allow = set(summary["allow"])
    gate = summary["overall"]["gate"]
    tests = failures = skipped = 0
    for cell in summary["cells"]:
        v = cell["verdict"]
        passed = v in ("PASS_EQUIV", "OK")
        let_through = not passed and (v in allow or v == gate)
        cases = [passed] + [c["pass"] for c in cell["comparisons"]]
        tests += len(cases)
        for ok in cases:
            if not ok:
                if let_through:
                    skipped += 1
                else:
                    failures += 1
    return tests, failures, skipped


def main(junit_path, summary_path):
    with open(summary_path) as f:
        summary = json.load(f)
    xml = JUnitXml.fromfile(junit_path)
    suites = list(xml)
    problems = []
    if len(suites) != 1:
        problems.append(f"{len(suites)} test suites, expected 1")
    suite = suites[0]
    cases = list(suite)
    verdicts = [c for c in cases if c.name == "verdict"]
    if len(verdicts) != len(summary["cells"]):
        problems.append(f"{len(verdicts)} verdict test cases for {len(summary['cells'])} cells")
    keys = sorted(c["key"] for c in summary["cells"])
    if sorted(c.classname for c in verdicts) != keys:
        problems.append("verdict test cases are not classed by the cell keys")
    sweep_checks = sum(1 for c in cases if c.name == "sweep")
    tests, failures, skipped = expected(summary)
    got_failures = sum(1 for c in cases if any(isinstance(r, Failure) for r in c.result))
    got_skipped = sum(1 for c in cases if any(isinstance(r, Skipped) for r in c.result))
    sweep_failed = sum(
        1 for c in cases if c.name == "sweep" and any(isinstance(r, Failure) for r in c.result)
    )
    want = (tests + sweep_checks, failures + sweep_failed, skipped)
    got = (len(cases), got_failures, got_skipped)
    if got != want:
        problems.append(f"(tests, failures, skipped) = {got}, expected {want}")
    attrs = (suite.tests, suite.failures, suite.skipped, suite.errors)
    if attrs != (got[0], got[1], got[2], 0):
        problems.append(f"suite attributes (tests, failures, skipped, errors) = {attrs}")
    for c in cases:
        for r in c.result:
            if isinstance(r, Failure) and not (r.message and r.text):
                problems.append(f"{c.classname}/{c.name}: failure without message or numbers")
    for p in problems:
        print(f"check_junit: {junit_path}: {p}", file=sys.stderr)
    if not problems:
        print(
            f"check_junit: {junit_path}: {got[0]} test cases, {got[1]} failures, "
            f"{got[2]} skipped, {len(summary['cells'])} cells: consistent"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
