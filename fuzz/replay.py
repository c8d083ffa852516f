"""Run inputs through a target without atheris: the corpus a fuzz run left (for branch coverage
with coverage.py), or the seeds and their mutations (the test suite's smoke test).

    python -m fuzz.replay TARGET DIR... [--coverage REPORT.json]

Every input is timed: one over HANG_SECONDS is a hang, as libFuzzer's -timeout would call it."""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

HANG_SECONDS = 1.0


@dataclass
class Outcome:
    inputs: int = 0
    seconds: float = 0.0
    slowest: float = 0.0
    crashes: list[tuple[bytes, str]] = field(default_factory=list)
    hangs: list[tuple[bytes, float]] = field(default_factory=list)


def run(one_input: Callable[[bytes], None], inputs: Iterable[bytes], *, hang: float = HANG_SECONDS) -> Outcome:
    out = Outcome()
    start = time.perf_counter()
    for data in inputs:
        t0 = time.perf_counter()
        try:
            one_input(data)
        except Exception:
            out.crashes.append((data, traceback.format_exc()))
        took = time.perf_counter() - t0
        out.inputs += 1
        out.slowest = max(out.slowest, took)
        if took > hang:
            out.hangs.append((data, took))
    out.seconds = time.perf_counter() - start
    return out


def files(dirs: Iterable[Path]) -> list[bytes]:
    found = []
    for d in dirs:
        if d.is_dir():
            found += [p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()]
    return found


def mutations(seeds: list[bytes], tokens: list[bytes], n: int, rng: random.Random) -> Iterable[bytes]:
    """n cheap libFuzzer-style mutations of the seeds (flip, insert, delete, duplicate, splice,
    insert a protocol token): what the smoke test feeds when atheris is not there."""
    for _ in range(n):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            op = rng.randrange(6)
            pos = rng.randint(0, len(data))
            if op == 0 and data:
                data[min(pos, len(data) - 1)] ^= 1 << rng.randrange(8)
            elif op == 1:
                data[pos:pos] = bytes([rng.randrange(256)])
            elif op == 2:
                del data[pos:pos + rng.randint(1, 16)]
            elif op == 3:
                a = rng.randint(0, len(data))
                data[pos:pos] = data[a:a + rng.randint(1, 64)]
            elif op == 4:
                other = rng.choice(seeds)
                a = rng.randint(0, len(other))
                data[pos:] = other[a:]
            else:
                data[pos:pos] = rng.choice(tokens)
        yield bytes(data)


def coverage_of(target: str, inputs: list[bytes]) -> tuple[Outcome, dict[str, object]]:
    """Replay under coverage.py with branch coverage; only the target's own parser modules count."""
    import coverage

    root = Path(__file__).resolve().parent.parent
    # Measure all of src/ from before the target's first import (so module-level lines count),
    # then report only the target's own parser modules.
    cov = coverage.Coverage(branch=True, include=[str(root / "src" / "*")], data_file=None)
    cov.start()
    try:
        from fuzz import targets

        spec = targets.load(target)
        outcome = run(spec.one_input, inputs)
    finally:
        cov.stop()
    spec_modules = list(spec.MODULES)
    report: dict[str, object] = {}
    per_file = {}
    totals = {"statements": 0, "covered_lines": 0, "branches": 0, "covered_branches": 0}
    with tempfile.TemporaryDirectory() as tmp:
        cov.json_report(outfile=str(Path(tmp) / "coverage.json"))
        data = json.loads((Path(tmp) / "coverage.json").read_text())
    for m in spec_modules:
        s = next(v["summary"] for k, v in data["files"].items() if (root / k).resolve() == (root / m).resolve())
        per_file[m] = {"statements": s["num_statements"], "covered_lines": s["covered_lines"],
                       "branches": s["num_branches"], "covered_branches": s["covered_branches"],
                       "percent": round(s["percent_covered"], 1)}
        for k in totals:
            totals[k] += per_file[m][k]
    covered = totals["covered_lines"] + totals["covered_branches"]
    possible = totals["statements"] + totals["branches"]
    report["files"] = per_file
    report["totals"] = totals
    report["percent"] = round(100.0 * covered / possible, 1) if possible else 100.0
    report["branch_percent"] = (round(100.0 * totals["covered_branches"] / totals["branches"], 1)
                                if totals["branches"] else 100.0)
    return outcome, report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fuzz.replay", description=__doc__)
    ap.add_argument("target")
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--coverage", type=Path, help="write a JSON report of branch coverage here")
    args = ap.parse_args(argv)
    inputs = files(args.dirs)
    if args.coverage:
        outcome, report = coverage_of(args.target, inputs)
    else:
        from fuzz import targets

        outcome, report = run(targets.load(args.target).one_input, inputs), {}
    report.update({"target": args.target, "inputs": outcome.inputs, "seconds": round(outcome.seconds, 2),
                   "slowest": round(outcome.slowest, 4), "crashes": len(outcome.crashes),
                   "hangs": len(outcome.hangs)})
    for data, tb in outcome.crashes[:3]:
        print(f"CRASH on {data[:200]!r}\n{tb}", file=sys.stderr)
    for data, took in outcome.hangs[:3]:
        print(f"HANG ({took:.2f}s) on {data[:200]!r}", file=sys.stderr)
    if args.coverage:
        args.coverage.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "files"}))
    return 1 if outcome.crashes or outcome.hangs else 0


if __name__ == "__main__":
    sys.exit(main())
