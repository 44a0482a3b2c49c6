"""Run the adversarial cases of tests/test_hostile_inputs.py and print how many ended in each outcome.

    PYTHONPATH=src python benchmarks/hostile_counts.py [--list] [--category NAME]

Outcomes: refused cleanly (an error naming the argument and the value, state unchanged), accepted (valid) (a valid
edge input that worked), unclear (refused, but the error does not name what the case expects), accepted silently
(a bad input taken, or a wrong result), state changed (refused after changing state; a refused save that changed
a file on disk, a partial write, counts here), wrongly refused (a valid
input refused), hangs (past the time limit), crashes (an internal error: RecursionError, MemoryError, KeyError...,
or a child process that died). Cases marked `isolate` run in a child process with a memory limit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import test_hostile_inputs as hostile  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print each case that did not end as expected")
    parser.add_argument("--category", default=None, help="run only this category")
    args = parser.parse_args()
    cases = [c for c in hostile.CASES if args.category in (None, c.category)]
    counts = dict.fromkeys(hostile.OUTCOMES, 0)
    by_category: dict[str, dict[str, int]] = {}
    start = time.perf_counter()
    odd = []
    for c in cases:
        outcome, detail = hostile.outcome_of(c)
        counts[outcome] += 1
        by_category.setdefault(c.category, dict.fromkeys(hostile.OUTCOMES, 0))[outcome] += 1
        expected = "accepted (valid)" if c.expect is None else "refused cleanly"
        if outcome != expected:
            odd.append((c.id, outcome, detail, c.known))
    print(f"tried {len(cases)} cases in {time.perf_counter() - start:.1f} s")
    for outcome in hostile.OUTCOMES:
        print(f"  {outcome:18s} {counts[outcome]:4d}")
    print("\nby category (" + ", ".join(f"{i}: {o}" for i, o in enumerate(hostile.OUTCOMES)) + ")")
    for category, row in by_category.items():
        print(f"  {category:20s} " + " ".join(f"{row[o]:4d}" for o in hostile.OUTCOMES))
    if args.list and odd:
        print("\nnot as expected:")
        for case_id, outcome, detail, known in odd:
            note = f" [known: {known}]" if known else ""
            print(f"  {case_id}: {outcome}: {detail[:200]}{note}")


if __name__ == "__main__":
    main()
