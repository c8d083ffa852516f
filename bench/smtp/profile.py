"""py-spy on the mailcove server during one smtp-source load, and a plain-text summary of where
the samples went (per thread: self and inclusive, by function)."""

from __future__ import annotations

import collections
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import ensure_pip, log


def py_spy() -> str:
    # The wheel ships only a binary (no importable module), next to the interpreter.
    path = str(Path(sys.executable).parent / "py-spy")
    if not Path(path).exists():
        ensure_pip("py_spy", "py-spy>=0.3")
        path = shutil.which("py-spy") or path
    if not Path(path).exists():
        raise RuntimeError("py-spy not found")
    return path


def record(pid: int, out: Path, load: Callable[[], object], rate: int = 200) -> str:
    """Sample `pid` (all threads, --nonblocking so the server is never paused) while `load()`
    runs; returns the summary text, also written next to `out`."""
    argv = [py_spy(), "record", "--pid", str(pid), "--format", "raw", "--threads", "--nonblocking"]
    argv += ["--rate", str(rate), "--output", str(out)]
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # py-spy attaches before the load starts
    try:
        load()
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
    if not out.exists():
        err = spy.stderr.read().decode(errors="replace") if spy.stderr else ""
        raise RuntimeError(f"py-spy wrote nothing: {err[-500:]}")
    text = summarize(out)
    out.with_suffix(".summary.txt").write_text(text)
    log(f"profile: {out} and {out.with_suffix('.summary.txt')}")
    return text


def _short(frame: str) -> str:
    # "function (module/path.py:123)" -> "function (path.py:123)" without the long prefix.
    if "(" in frame and "/" in frame:
        name, _, where = frame.partition(" (")
        where = where.rstrip(")")
        parts = where.split("/")
        keep = parts[-3:] if "site-packages" not in where else parts[-2:]
        return f"{name} ({'/'.join(keep)})"
    return frame


def summarize(path: Path, top: int = 30) -> str:
    per_thread: dict[str, int] = collections.Counter()
    self_t: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    incl_t: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = stack.split(";")
        thread, frames = frames[0], [_short(f) for f in frames[1:]]
        total += count
        per_thread[thread] += count
        if frames:
            self_t[thread][frames[-1]] += count
        # Inclusive by function (line numbers dropped), each function once per stack.
        for f in {re.sub(r":\d+\)$", ")", f) for f in frames}:
            incl_t[thread][f] += count
    out = [f"{total} samples (only threads holding or waiting for the CPU; idle threads are left out)", ""]
    for thread, n in sorted(per_thread.items(), key=lambda kv: -kv[1]):
        out.append(f"== {thread}: {n} samples, {100 * n / max(total, 1):.1f}%")
        out.append("  self:")
        for f, c in self_t[thread].most_common(top):
            out.append(f"    {100 * c / n:5.1f}%  {f}")
        out.append("  inclusive:")
        for f, c in incl_t[thread].most_common(top):
            out.append(f"    {100 * c / n:5.1f}%  {f}")
        out.append("")
    return "\n".join(out)
