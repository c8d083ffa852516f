"""bench/importmail: how long `mailcove import mbox` takes for a 10,000-message mbox (issue 7:
under 30 seconds), and Python's `mailbox.mbox` reading the same file as a yardstick.

    .venv/bin/python -m bench.importmail [--messages 10000] [--runs 3] [--seed 1]

The mbox is generated once per run of the bench: sizes 1-50 KB spread evenly, a third multipart
with a base64 attachment, a fifth with an X-UIDL, every message with Dovecot's X-UID/Status
headers and the first with X-IMAPbase, LF line ends, some body lines starting with "From ".
Each run imports it with the real CLI (`python -m mailcove ... import mbox`, a fresh data dir
with one account) and is timed from process start to exit: parsing, CRLF conversion, MIME scan,
fsynced commits. The figure is the median of --runs runs.
"""

from __future__ import annotations

import argparse
import base64
import json
import mailbox
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
USER = "bench@example.test"
WORDS = (
    "mail", "server", "import", "mbox", "dovecot", "sendmail", "folder", "message", "header", "body", "line",
    "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "again", "and", "report", "from", "here",
    "on",
)


def text_lines(rng: random.Random, size: int) -> bytes:
    out: list[bytes] = []
    n = 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14)))
        if rng.random() < 0.01:
            line = "From here on " + line  # a body line an mboxo writer would have escaped
        b = line.encode() + b"\n"
        out.append(b)
        n += len(b)
    return b"".join(out)


def make_message(rng: random.Random, i: int, size: int) -> bytes:
    when = time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(1_700_000_000 + i * 60))
    head = [
        f"From sender{i % 50}@example.org {when}",
        f"Return-Path: <sender{i % 50}@example.org>",
        f"From: Sender {i % 50} <sender{i % 50}@example.org>",
        f"To: {USER}",
        f"Subject: message {i} about {rng.choice(WORDS)}",
        f"Message-ID: <{i}.{rng.getrandbits(32):x}@example.org>",
        "Date: " + time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(1_700_000_000 + i * 60)),
        "MIME-Version: 1.0",
    ]
    if rng.random() < 0.2:
        head.append(f"X-UIDL: {i:08x}{rng.getrandbits(32):08x}")
    if i == 0:
        head.append("X-IMAPbase: 1700000000 0000010000")
    head += [f"X-UID: {i + 1}", "Status: RO" if rng.random() < 0.7 else "Status: O"]
    if rng.random() < 0.33:
        boundary = f"=_b{i}"
        attach = base64.encodebytes(rng.randbytes(max(size // 2, 100) * 3 // 4))
        body = (
            f"--{boundary}\nContent-Type: text/plain; charset=utf-8\n\n".encode()
            + text_lines(rng, size // 2)
            + f"--{boundary}\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n"
              f"Content-Disposition: attachment; filename=\"f{i}.bin\"\n\n".encode()
            + attach
            + f"--{boundary}--\n".encode()
        )
        head.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
    else:
        head.append("Content-Type: text/plain; charset=utf-8")
        body = text_lines(rng, size)
    return ("\n".join(head) + "\n\n").encode() + body + b"\n"


def generate(path: Path, count: int, seed: int) -> int:
    rng = random.Random(seed)
    with open(path, "wb") as f:
        for i in range(count):
            f.write(make_message(rng, i, rng.randint(1024, 50 * 1024)))
    return path.stat().st_size


def mailcove(data: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailcove", "--data", str(data), *args], input=stdin,
                          capture_output=True, text=True, check=True)


def run_import(mbox: Path, tmp: Path) -> tuple[float, str]:
    data = tmp / "data"
    data.mkdir(mode=0o700)  # admin commands never create a data dir
    mailcove(data, "domain", "add", "example.test")
    mailcove(data, "user", "add", USER, "--password-stdin", stdin="x\n")
    t0 = time.perf_counter()
    proc = mailcove(data, "import", "mbox", USER, str(mbox), "--quiet")
    return time.perf_counter() - t0, proc.stdout.strip().splitlines()[0]


def stdlib_read(mbox: Path) -> float:
    t0 = time.perf_counter()
    n = sum(1 for _ in mailbox.mbox(str(mbox), create=False).itervalues())
    assert n > 0
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmpdir:
        tmp = Path(tmpdir)
        mbox = tmp / "bench.mbox"
        size = generate(mbox, args.messages, args.seed)
        print(f"mbox: {args.messages} messages, {size / 1e6:.1f} MB", file=sys.stderr)
        times: list[float] = []
        for run in range(args.runs):
            d = tmp / f"run{run}"
            d.mkdir()
            seconds, line = run_import(mbox, d)
            times.append(seconds)
            print(f"run {run + 1}: {seconds:.1f} s  ({line})", file=sys.stderr)
        ref = [stdlib_read(mbox) for _ in range(args.runs)]
        result = {
            "messages": args.messages,
            "mbox_bytes": size,
            "import_seconds": [round(t, 2) for t in times],
            "import_median_seconds": round(statistics.median(times), 2),
            "messages_per_second": round(args.messages / statistics.median(times)),
            "stdlib_mailbox_read_median_seconds": round(statistics.median(ref), 2),
            "cpus": os.cpu_count(),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        }
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
