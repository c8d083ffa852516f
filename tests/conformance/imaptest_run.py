"""Dovecot's imaptest (../shared/imaptest, built by its build.sh) against a server on loopback:
the scripted compliance groups and the multi-client stress mode. Used by
tests/conformance/test_imaptest.py and described in docs/imap.md.

    binary = build_imaptest()                       # fails under CI=true when the build fails
    result = run_scripted(binary, port, user, password)
    errors = run_stress(binary, port, "testuser%d@hamap.local", "pass", mbox)
"""

from __future__ import annotations

import os
import random
import re
import subprocess
from dataclasses import dataclass
from email.utils import format_datetime
from pathlib import Path

import pytest

from mailcove_testing import REPO

SHARED = REPO.parent / "shared" / "imaptest"
TESTS_DIR = SHARED / "upstream" / "src" / "tests"
BUILD_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "imaptest-924f619"

# The groups issue 12 lets us leave out, each with the capability it needs. imaptest passes a
# group silently when the capability is not advertised, so the test checks that it is not.
OUT_OF_SCOPE = {
    "catenate": "CATENATE",
    "catenate-multiappend": "CATENATE",
    "urlauth": "URLAUTH",
    "urlauth2": "URLAUTH",
    "urlauth-binary": "URLAUTH",
    "notify": "NOTIFY",
    "search-context-update": "CONTEXT=SEARCH",
    "search-context-update2": "CONTEXT=SEARCH",
    "search-context-update3": "CONTEXT=SEARCH",
    "search-partial": "CONTEXT=SEARCH",
    "sort-partial": "CONTEXT=SORT",
}
_SUMMARY = re.compile(r"^(\d+) test groups: (\d+) failed, (\d+) skipped due to missing capabilities$", re.M)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def build_imaptest() -> str:
    """The imaptest binary, built once per machine (about a minute). A failed build fails the
    test under CI=true and skips it elsewhere."""
    script = SHARED / "build.sh"
    if not script.exists():
        pytest.fail(f"{script} is missing: the conformance suite must sit beside the repository")
    r = subprocess.run(["bash", str(script), str(BUILD_DIR)], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        msg = f"imaptest build failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        if _in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return r.stdout.strip().splitlines()[-1]


def scripted_groups() -> list[str]:
    return sorted(p.name for p in TESTS_DIR.iterdir() if p.is_file() and not p.name.endswith(".mbox"))


@dataclass
class ScriptedResult:
    groups: int
    failed: int
    skipped: int
    output: str

    def failure_lines(self) -> str:
        """imaptest's own report of each failure (command, expected and actual replies)."""
        lines = self.output.splitlines()
        keep = [i for i, line in enumerate(lines) if line.startswith("*** Test")]
        out: list[str] = []
        for i in keep:
            out.extend(lines[i : i + 12])
        return "\n".join(out)


def run_scripted(binary: str, port: int, user: str, password: str, tests: Path = TESTS_DIR) -> ScriptedResult:
    r = subprocess.run(
        [binary, "host=127.0.0.1", f"port={port}", f"user={user}", f"pass={password}", f"test={tests}"],
        capture_output=True, text=True, timeout=600, cwd=str(TESTS_DIR),
    )
    output = r.stdout + r.stderr
    m = _SUMMARY.search(output)
    if m is None:
        raise AssertionError(f"imaptest printed no summary (exit {r.returncode}):\n{output[-5000:]}")
    return ScriptedResult(int(m[1]), int(m[2]), int(m[3]), output)


def run_stress(binary: str, port: int, user_pattern: str, password: str, mbox: Path, *, users: int = 5,
               clients: int = 10, secs: int = 20) -> tuple[list[str], str]:
    """imaptest's default stress mode with its default states and checks; returns the `Error:`
    lines and the whole output."""
    r = subprocess.run(
        [binary, "host=127.0.0.1", f"port={port}", f"user={user_pattern}", f"pass={password}",
         f"users={users}", f"clients={clients}", f"secs={secs}", f"mbox={mbox}"],
        capture_output=True, text=True, timeout=secs + 120,
    )
    output = r.stdout + r.stderr
    if "Totals:" not in output:
        raise AssertionError(f"imaptest stress did not finish (exit {r.returncode}):\n{output[-5000:]}")
    return [line for line in output.splitlines() if "Error:" in line], output


def totals(output: str) -> dict[str, int]:
    """The command counts of the `Totals:` table (its header row and its last row)."""
    lines = output[output.index("Totals:"):].splitlines()
    names = lines[1].split()
    for line in lines[2:]:
        cells = line.split()
        if len(cells) == len(names) and all(c.isdigit() for c in cells):
            return dict(zip(names, map(int, cells), strict=True))
    raise AssertionError("no counts under Totals:\n" + "\n".join(lines[:8]))


_WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu",
          "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega")


def sample_mbox(path: Path, count: int = 300, seed: int = 12) -> Path:
    """An mbox of ordinary generated messages (imaptest APPENDs from it): varied senders,
    subjects, sizes and a few multipart ones, deterministic for a given seed."""
    import datetime

    rnd = random.Random(seed)
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    parts: list[str] = []
    for i in range(count):
        when = start + datetime.timedelta(minutes=37 * i)
        sender = f"sender{i % 7}@example.org"
        subject = " ".join(rnd.choice(_WORDS) for _ in range(rnd.randint(2, 6)))
        body = "\n".join(" ".join(rnd.choice(_WORDS) for _ in range(rnd.randint(3, 14)))
                         for _ in range(rnd.randint(1, 40)))
        head = (f"From {sender} {when.strftime('%a %b %d %H:%M:%S %Y')}\n"
                f"From: Sender {i % 7} <{sender}>\nTo: user{i % 5}@example.com\nSubject: {subject}\n"
                f"Date: {format_datetime(when)}\nMessage-ID: <{i}.{seed}@example.org>\nMIME-Version: 1.0\n")
        if i % 9 == 0:
            parts.append(head + f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n'
                         f"Content-Type: text/plain\n\n{body}\n--b{i}\nContent-Type: application/octet-stream\n"
                         f"Content-Transfer-Encoding: base64\n\nAAECAwQFBgcICQ==\n--b{i}--\n\n")
        else:
            parts.append(head + f"Content-Type: text/plain\n\n{body}\n\n")
    path.write_text("".join(parts))
    return path
