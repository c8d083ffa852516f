"""`make fuzz`: every target (or --target ones) under atheris for --runs inputs each, one at a time,
then a replay of each target's corpus under coverage.py for its branch coverage.

    .venv/bin/python -m fuzz --runs 100000 [--target smtp] [--keep-corpus]

Work files go to build/fuzz/<target>/ (seeds, corpus, artifacts, libFuzzer's log, coverage.json);
build/fuzz/results.json and the printed table hold the figures. Exit status 1 when any target
crashed, hung or ran fewer inputs than asked."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from fuzz import targets
from fuzz.common import libfuzzer_dict

ROOT = Path(__file__).resolve().parent.parent
HANG_SECONDS = 1
_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.M)
_ARTIFACT = re.compile(r"^(crash|timeout|oom|leak|slow-unit)-")


def prepare(name: str, work: Path, *, keep_corpus: bool) -> tuple[Path, Path, Path, Path]:
    spec = targets.load(name)
    seeds, corpus, artifacts = work / "seeds", work / "corpus", work / "artifacts"
    shutil.rmtree(seeds, ignore_errors=True)
    shutil.rmtree(artifacts, ignore_errors=True)
    if not keep_corpus:
        shutil.rmtree(corpus, ignore_errors=True)
    for d in (seeds, corpus, artifacts):
        d.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(spec.SEEDS):
        (seeds / f"seed-{i:03d}").write_bytes(data)
    dict_file = work / "tokens.dict"
    dict_file.write_text(libfuzzer_dict(spec.TOKENS))
    return seeds, corpus, artifacts, dict_file


def fuzz_one(name: str, runs: int, out: Path, *, keep_corpus: bool, max_len: int | None) -> dict[str, object]:
    work = out / name
    seeds, corpus, artifacts, dict_file = prepare(name, work, keep_corpus=keep_corpus)
    cmd = [sys.executable, "-m", "fuzz.worker", name, f"-runs={runs}", f"-timeout={HANG_SECONDS}",
           "-rss_limit_mb=4096", f"-dict={dict_file}", f"-artifact_prefix={artifacts}/", "-print_final_stats=1",
           *([f"-max_len={max_len}"] if max_len else []), str(corpus), str(seeds)]
    load_before = os.getloadavg()
    print(f"fuzz {name}: {runs} inputs ...", flush=True)
    start = time.monotonic()
    log_path = work / "libfuzzer.log"
    with log_path.open("wb") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    wall = time.monotonic() - start
    load_after = os.getloadavg()
    text = log_path.read_text(errors="replace")
    done = _DONE.search(text)
    stats = {k: int(v) for k, v in _STAT.findall(text)}
    ran = int(done.group(1)) if done else stats.get("number_of_executed_units", 0)
    found = sorted(p.name for p in artifacts.iterdir() if _ARTIFACT.match(p.name))
    crashes = [f for f in found if not f.startswith(("timeout-", "slow-unit-"))]
    hangs = [f for f in found if f.startswith("timeout-")]
    if rc != 0 and not found:
        crashes.append(f"exit status {rc} (see {log_path})")
    print(f"fuzz {name}: {ran} inputs in {wall:.0f}s, {len(crashes)} crashes, {len(hangs)} hangs; "
          "replaying the corpus under coverage ...", flush=True)
    cov_path = work / "coverage.json"
    replay = subprocess.run([sys.executable, "-m", "fuzz.replay", name, str(corpus), str(seeds), "--coverage",
                             str(cov_path)], cwd=ROOT, capture_output=True, text=True)
    cov = json.loads(cov_path.read_text()) if cov_path.exists() else {}
    if replay.returncode != 0:
        sys.stderr.write(replay.stderr)
    return {
        "target": name, "inputs": ran, "runs_asked": runs, "seconds": round(wall, 1),
        "execs_per_second": round(ran / wall) if wall else 0, "crashes": crashes, "hangs": hangs,
        "corpus": len(list(corpus.iterdir())), "replay_crashes": cov.get("crashes"), "replay_hangs": cov.get("hangs"),
        "replay_slowest_seconds": cov.get("slowest"), "branch_percent": cov.get("branch_percent"),
        "percent": cov.get("percent"), "coverage_totals": cov.get("totals"), "coverage_files": cov.get("files"),
        "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in load_after],
        "exit_status": rc,
    }


def table(results: list[dict[str, object]]) -> str:
    head = ("| target | inputs | wall time | crashes | hangs | branches covered | coverage (lines+branches) "
            "| load average (1 min, before/after) |\n|---|---|---|---|---|---|---|---|\n")
    rows = []
    for r in results:
        t = r["coverage_totals"] or {}
        branches = f"{t.get('covered_branches')}/{t.get('branches')} = {r['branch_percent']}%" if t else "n/a"
        rows.append(f"| {r['target']} | {r['inputs']:,} | {r['seconds']} s | {len(r['crashes'])} | "  # type: ignore[arg-type]
                    f"{len(r['hangs'])} | {branches} | {r['percent']}% | "  # type: ignore[arg-type]
                    f"{r['loadavg_before'][0]} / {r['loadavg_after'][0]} |")  # type: ignore[index]
    return head + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100_000, help="inputs per target (default 100000)")
    ap.add_argument("--target", action="append", choices=targets.NAMES, help="this target only (repeatable)")
    ap.add_argument("--keep-corpus", action="store_true", help="start from the last run's corpus, not afresh")
    ap.add_argument("--max-len", type=int, default=None, help="libFuzzer -max_len (default: its own rule)")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "fuzz")
    args = ap.parse_args(argv)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: pip install -e '.[fuzz]' (make fuzz does it)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    command = " ".join(["python -m fuzz", *(argv if argv is not None else sys.argv[1:])])
    for name in args.target or targets.NAMES:
        result = fuzz_one(name, args.runs, args.out, keep_corpus=args.keep_corpus, max_len=args.max_len)
        result["command"] = command  # results.json keeps each target's last run, maybe of several commands
        result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        results.append(result)
    summary = {"command": command, "python": sys.version.split()[0], "cpus": os.cpu_count(), "results": results}
    results_file = args.out / "results.json"
    old = json.loads(results_file.read_text()) if results_file.exists() else {}
    by_target = {r["target"]: r for r in old.get("results", [])}
    by_target.update({r["target"]: r for r in results})
    summary["results"] = [by_target[n] for n in targets.NAMES if n in by_target]
    results_file.write_text(json.dumps(summary, indent=1) + "\n")
    print()
    print(table(results))
    failed = [r["target"] for r in results
              if r["crashes"] or r["hangs"] or r["replay_crashes"] or r["replay_hangs"]
              or int(r["inputs"]) < args.runs]  # type: ignore[call-overload]
    if failed:
        print(f"FAILED: {', '.join(failed)} (artifacts under {args.out}/<target>/artifacts)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
