"""bench/imaptest: imaptest's standard stress load against mailcove and Dovecot in the same run (issue 15).

    .venv/bin/python -m bench.imaptest [--runs 3] [--secs 20] [--users 50] [--clients 50]
        [--loads default,logout0] [--servers mailcove,dovecot] [--profile] [--json FILE]
        [--login-throttle N] [--workers N]

For each load, --runs times, the servers take turns (mailcove, dovecot, mailcove, dovecot, ...).
Every turn starts a freshly prepared server (a new data dir or Maildir root with --users empty
users testuser1..N@hamap.local; nothing is reused between turns) and runs imaptest's stress mode
against it:

    imaptest host=127.0.0.1 port=P user=testuser%d@hamap.local pass=... users=50 clients=50
             secs=20 mbox=FILE [logout=0]

- `default`: imaptest's own mix, where each session ends with LOGOUT and logs in again;
  `logout0`: the same with `logout=0`, long sessions (pure command throughput).
- The mbox holds 500 ordinary messages generated here, deterministically (seed 15): sizes from
  a few hundred bytes to 60 KB, plain text, quoted-printable UTF-8, HTML, multipart/alternative,
  attachments, a forwarded message/rfc822, and RFC 2047 encoded non-ASCII subjects and names.
- commands/s = the sum of imaptest's `Totals:` row (every command it counted as done, LOGIN and
  LOGOUT included) / secs. imaptest's `Error:` lines are counted; a turn with any is flagged `!`
  and its figure does not count for the issue's goals.
- CPU = utime+stime (and the children's the server reaped) summed over all the server's processes
  (/proc/PID/stat), from just before imaptest starts to just after it exits, as % of one core
  (the machine's cores: os.cpu_count(), so 200% is both of two).
- mailcove runs with bench/imap's lab config (plaintext LOGIN allowed) and otherwise its defaults.
  --login-throttle N sets [auth] max_failures_per_ip. Before 51ea0a0 the throttle counted every
  login in flight as a failure, so past 10 concurrent LOGINs from 127.0.0.1 were refused ("NO
  [AUTHENTICATIONFAILED]", hundreds of imaptest errors a turn); --login-throttle 1000 measures such
  a tree without that. --workers N is `serve --workers N`; the default 0 is one per core, the
  server's own default since 25959bf (the test harness's start_mailcove would otherwise start one).
- --profile: one extra mailcove turn of the logout0 load (not counted in the medians) with
  `py-spy record --format raw --nolineno` on the server process for 15 s from the 3rd second
  (idle samples left out: only busy samples count), summarised as the top 25 functions by self
  and by total (inclusive) samples.

Must run as root (Dovecot drops to its own users). imaptest is built by ../shared/imaptest/build.sh
(Debian: dovecot-dev build-essential autoconf automake libtool pkg-config).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import platform
import quopri
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from email.header import Header
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

from bench.common import load_average
from bench.imap.__main__ import PASSWORD, REPO, Peer, dovecot_peer, process_tree  # also puts tests/ on sys.path
from interop.imap_servers import PLAIN_CONFIG, start_mailcove  # tests/interop, found through the line above

LOADS = {"default": [], "logout0": ["logout=0"]}
USER_PATTERN = "testuser%d@hamap.local"
PROFILE_SECONDS = 15
PROFILE_START = 3.0  # seconds into the turn: imaptest's clients have connected and appended


# --- the mbox --------------------------------------------------------------------------------------

_WORDS = [
    "mail", "server", "queue", "folder", "message", "reply", "thread", "meeting", "report", "budget", "draft",
    "invoice", "schedule", "project", "review", "release", "update", "notice", "agenda", "minutes", "summary",
    "weekly", "quarterly", "customer", "support", "ticket", "order", "shipment", "travel", "hotel", "flight",
    "dinner", "lunch", "coffee", "office", "team", "family", "photo",
]
_NON_ASCII = {  # RFC 2047 encoded-word material: names and subjects people really send
    "ko": ("김민준", "회의 일정 안내", "분기 보고서 초안"),
    "de": ("Jürgen Größe", "Grüße aus Köln", "Übersicht für März"),
    "fr": ("Hélène Dubois", "Réunion de l'équipe", "Café à déjeuner"),
    "ja": ("山田太郎", "会議の資料について", "週報"),
    "ru": ("Ольга Петрова", "Отчёт за неделю", "Встреча в пятницу"),
}
_UTF8_WORDS = ["naïve", "café", "résumé", "Grüße", "Straße", "회의", "보고서", "메일", "早上好", "привет"]


def _lines(rnd: random.Random, size: int, words: list[str]) -> str:
    out, total = [], 0
    while total < size:
        line = " ".join(rnd.choice(words) for _ in range(rnd.randint(6, 11)))
        out.append(line.capitalize() if rnd.random() < 0.3 else line)
        total += len(line) + 1
        if rnd.random() < 0.12:
            out.append("")
    return "\n".join(out) + "\n"


def _text_part(rnd: random.Random, size: int) -> str:
    """A text/plain part: mostly US-ASCII 7bit, one in four UTF-8 quoted-printable."""
    if rnd.random() < 0.25:
        text = _lines(rnd, size, _WORDS + _UTF8_WORDS)
        body = quopri.encodestring(text.encode()).decode("ascii")
        return "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n" + body
    return "Content-Type: text/plain; charset=us-ascii\n\n" + _lines(rnd, size, _WORDS)


def _html_part(rnd: random.Random, size: int) -> str:
    paras = _lines(rnd, size, _WORDS).strip().split("\n")
    body = "\n".join(f"<p>{p}</p>" for p in paras if p)
    return f"Content-Type: text/html; charset=us-ascii\n\n<html><body>\n{body}\n</body></html>\n"


def _attachment(rnd: random.Random, size: int, n: int) -> str:
    kind, ext = rnd.choice((("application/pdf", "pdf"), ("image/png", "png"), ("application/zip", "zip")))
    data = base64.encodebytes(rnd.randbytes(max(64, size))).decode("ascii")
    return (f'Content-Type: {kind}; name="file{n}.{ext}"\nContent-Transfer-Encoding: base64\n'
            f'Content-Disposition: attachment; filename="file{n}.{ext}"\n\n{data}')


def _multipart(subtype: str, boundary: str, parts: list[str]) -> str:
    inner = "".join(f"--{boundary}\n{p}\n" for p in parts)
    head = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\n\nThis is a MIME message.\n\n'
    return f"{head}{inner}--{boundary}--\n"


def _headers(rnd: random.Random, n: int, when: datetime.datetime) -> str:
    sender = f"sender{n % 23}@example.org"
    name, subject = f"Sender {n % 23}", " ".join(rnd.choice(_WORDS) for _ in range(rnd.randint(2, 7)))
    if n % 5 == 0:  # a fifth: non-ASCII display name and subject, as RFC 2047 encoded words
        lang = sorted(_NON_ASCII)[n // 5 % len(_NON_ASCII)]
        person, *subjects = _NON_ASCII[lang]
        name, subject = person, f"{rnd.choice(subjects)} {n}"
    enc_subject = Header(subject, "utf-8").encode() if not subject.isascii() else subject
    lines = [
        f"From: {formataddr((name, sender), charset='utf-8')}",
        f"To: {formataddr(('Bench User', 'user@example.com'))}",
        f"Subject: {enc_subject}",
        f"Date: {format_datetime(when)}",
        f"Message-ID: <{n}.imaptest-bench@example.org>",
    ]
    if n % 4 == 1:
        lines.append(f"Cc: team{n % 3}@example.com, Other Person <other{n % 11}@example.net>")
    if n % 6 == 2 and n > 2:
        lines.append(f"In-Reply-To: <{n - 2}.imaptest-bench@example.org>")
    lines.append("MIME-Version: 1.0")
    return "\n".join(lines) + "\n"


def mbox_message(rnd: random.Random, n: int, when: datetime.datetime) -> str:
    size = int(min(60_000, rnd.lognormvariate(7.6, 1.0))) + 200
    roll = rnd.random()
    if roll < 0.06:
        body = _multipart("alternative", f"alt{n}", [_text_part(rnd, size // 2), _html_part(rnd, size // 2)])
    elif roll < 0.10:
        body = _multipart("mixed", f"mix{n}", [_text_part(rnd, size // 3), _attachment(rnd, size, n)])
    elif roll < 0.12:
        alt = _multipart("alternative", f"alt{n}", [_text_part(rnd, size // 3), _html_part(rnd, size // 3)])
        body = _multipart("mixed", f"mix{n}", [alt, _attachment(rnd, size // 2, n)])
    elif roll < 0.13:
        inner = _headers(rnd, n + 10_000, when - datetime.timedelta(days=3)) + _text_part(rnd, size // 2)
        body = _multipart("mixed", f"fwd{n}", [_text_part(rnd, 200), "Content-Type: message/rfc822\n\n" + inner])
    elif roll < 0.18:
        body = _html_part(rnd, size)
    else:
        body = _text_part(rnd, size)
    envelope = f"From sender{n % 23}@example.org {when.strftime('%a %b %d %H:%M:%S %Y')}\n"
    return envelope + _headers(rnd, n, when) + body + "\n"


def write_mbox(path: Path, count: int = 500, seed: int = 15) -> Path:
    rnd = random.Random(seed)
    start = datetime.datetime(2026, 11, 1, 8, 0, tzinfo=datetime.UTC)
    text = "".join(mbox_message(rnd, n, start + datetime.timedelta(minutes=41 * n)) for n in range(count))
    # mbox: a body line starting "From " would start a new message (the generator makes none)
    assert sum(line.startswith("From ") for line in text.splitlines()) == count
    path.write_text(text)
    return path


# --- one turn ---------------------------------------------------------------------------------------


def cpu_seconds(pids: list[int]) -> float:
    """utime+stime+cutime+cstime summed over the live processes: a process that ended in between
    is counted through the parent that reaped it (Dovecot's imap processes, one per login)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # fields 14-17 of proc(5)
    return total / tick


def mailcove_config(login_throttle: int) -> str:
    """bench/imap's lab config (plaintext LOGIN allowed), plus what the options change."""
    text = PLAIN_CONFIG  # ends inside [auth]
    if login_throttle:
        text += f"max_failures_per_ip = {login_throttle}\n"
    return text


def start_peer(args: argparse.Namespace, name: str, base: Path, users: list[str]) -> Peer:
    base.mkdir(parents=True)
    if name == "dovecot":
        return dovecot_peer(base, users, {})
    config = mailcove_config(args.login_throttle)
    srv = start_mailcove(base, dict.fromkeys(users, PASSWORD), config=config, workers=args.workers)
    host, port = srv.address("imap")
    return Peer("mailcove", host, port, 0, lambda: process_tree(srv.pid), srv.stop, srv.logs)


def error_kinds(errors: list[str]) -> dict[str, int]:
    """imaptest's Error: lines with user names, connection ids and numbers folded, most common first."""
    kinds = Counter(re.sub(r"\d+", "N", re.sub(r"^Error: \S+\[\d+\]: ", "Error: ", e))[:160] for e in errors)
    return dict(kinds.most_common(12))


def turn(args: argparse.Namespace, binary: str, mbox: Path, name: str, load: str, base: Path,
         profile_out: Path | None = None) -> dict[str, Any]:
    users = [USER_PATTERN % i for i in range(1, args.users + 1)]
    peer = start_peer(args, name, base, users)
    argv = [binary, "host=127.0.0.1", f"port={peer.port}", f"user={USER_PATTERN}", f"pass={PASSWORD}",
            f"users={args.users}", f"clients={args.clients}", f"secs={args.secs}", f"mbox={mbox}", *LOADS[load]]
    out_path = base / "imaptest.out"
    loadavg = load_average()
    try:
        with open(out_path, "w") as out:
            cpu0, t0 = cpu_seconds(peer.pids()), time.monotonic()
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True)
            spy = None
            if profile_out is not None:
                time.sleep(PROFILE_START)
                spy = subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(peer.pids()[0]),
                     "--duration", str(PROFILE_SECONDS), "--format", "raw", "--nolineno", "--subprocesses",
                     "--output", str(profile_out)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                )
            try:
                proc.wait(args.secs + 90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            wall = time.monotonic() - t0
            cpu = cpu_seconds(peer.pids()) - cpu0
            if spy is not None:
                _, err = spy.communicate(timeout=PROFILE_SECONDS + 30)
                if spy.returncode != 0:
                    print(f"  py-spy failed ({spy.returncode}): {err[-2000:]}", flush=True)
    finally:
        logs = peer.logs()
        peer.stop()
    output = out_path.read_text(errors="replace")
    errors = [line for line in output.splitlines() if "Error:" in line]
    r: dict[str, Any] = {
        "server": name, "load": load, "exit": proc.returncode, "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2), "cpu_percent_of_core": round(100 * cpu / wall, 1), "loadavg_before": loadavg,
        "errors": len(errors), "error_kinds": error_kinds(errors), "error_lines": errors[:20],
        "totals": None, "commands": None, "commands_per_s": None,
    }
    if "Totals:" in output:
        from conformance.imaptest_run import totals  # tests/ is on sys.path (bench.imap)

        done = totals(output)
        r["totals"] = done
        r["commands"] = sum(done.values())
        r["commands_per_s"] = round(r["commands"] / args.secs, 1)
    else:
        r["output_tail"] = output[-3000:]
        print(f"  imaptest against {name} printed no Totals (exit {proc.returncode}):\n{output[-3000:]}\n"
              f"{logs[-2000:]}", flush=True)
    flag = f"  ! {len(errors)} errors: {r['error_kinds']}" if errors else ""
    print(f"  {load} {name}: {r['commands_per_s']} commands/s, CPU {r['cpu_percent_of_core']}% of a core, "
          f"load average before {loadavg:.2f}{flag}", flush=True)
    return r


# --- the profile ---------------------------------------------------------------------------------

_PROCESS_FRAME = re.compile(r"^process \d+:")


def _short(frame: str) -> str:
    """'fetch_meta (/x/src/mailcove/store/sqlite.py)' -> 'fetch_meta (mailcove/store/sqlite.py)'."""
    func, _, where = frame.partition(" (")
    where = re.sub(r":\d+\)$", ")", where)  # in case line numbers are there after all
    for cut in ("/site-packages/", "/src/", "/lib/python3"):
        if cut in where:
            where = where.split(cut, 1)[1]
            if cut == "/lib/python3":
                where = where.split("/", 1)[1] if "/" in where else where
            break
    return f"{func} ({where}" if where else func


def summarise_profile(raw: str, top: int = 25) -> dict[str, Any]:
    """py-spy's raw format: one line per distinct stack, 'frame;frame;...;leaf COUNT'."""
    self_n: Counter[str] = Counter()
    total_n: Counter[str] = Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_short(f) for f in stack.split(";") if f and not _PROCESS_FRAME.match(f)]
        if not frames:
            continue
        n = int(count)
        samples += n
        self_n[frames[-1]] += n
        for f in set(frames):  # once per stack, however deep the recursion
            total_n[f] += n

    def rows(c: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": f, "samples": n, "percent": round(100 * n / samples, 1)} for f, n in c.most_common(top)]

    return {"busy_samples": samples, "self": rows(self_n), "total": rows(total_n)}


def profile_markdown(summary: dict[str, Any]) -> str:
    out = [f"Busy samples: {summary['busy_samples']:,}.", ""]
    for key, title in (("self", "self"), ("total", "total (inclusive)")):
        out += [f"Top {len(summary[key])} by {title} samples:", "", "| # | function (file) | samples | % of busy |",
                "|---|---|---|---|"]
        out += [f"| {i} | `{r['function']}` | {r['samples']:,} | {r['percent']:.1f} |"
                for i, r in enumerate(summary[key], 1)]
        out.append("")
    return "\n".join(out)


# --- the report ------------------------------------------------------------------------------------


def fmt_run(r: dict[str, Any]) -> str:
    if r["commands_per_s"] is None:
        return "failed"
    return f"{r['commands_per_s']:,.0f}" + (f"!({r['errors']} errors)" if r["errors"] else "")


def summarise(load: str, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {"load": load}
    for name, rs in runs.items():
        figures = [r["commands_per_s"] for r in rs if r["commands_per_s"] is not None]
        out[name] = {
            "commands_per_s_median": statistics.median(figures) if figures else None,
            "errors": [r["errors"] for r in rs],
            "cpu_percent_median": statistics.median(r["cpu_percent_of_core"] for r in rs) if rs else None,
            "flagged": any(r["errors"] or r["commands_per_s"] is None for r in rs),
        }
    mc, dc = out.get("mailcove", {}), out.get("dovecot", {})
    if mc.get("commands_per_s_median") and dc.get("commands_per_s_median"):
        out["ratio"] = mc["commands_per_s_median"] / dc["commands_per_s_median"]
    return out


def print_table(summaries: list[dict[str, Any]], runs: dict[str, dict[str, list[dict[str, Any]]]],
                servers: list[str]) -> None:
    def cell(s: dict[str, Any], name: str, key: str, fmt: str) -> str:
        v = s.get(name, {}).get(key)
        return "-" if v is None else format(v, fmt) + ("!" if key.startswith("commands") and s[name]["flagged"] else "")

    print("\n| load | " + " | ".join(f"{n} commands/s" for n in servers) + " | ratio (mailcove/dovecot) | "
          + " | ".join(f"{n} errors" for n in servers) + " | " + " | ".join(f"{n} CPU (% of a core)" for n in servers)
          + " |")
    print("|---" * (2 + 3 * len(servers)) + "|")
    for s in summaries:
        ratio = f"{s['ratio']:.2f}x" if "ratio" in s else "-"
        print(f"| {s['load']} | " + " | ".join(cell(s, n, "commands_per_s_median", ",.0f") for n in servers)
              + f" | {ratio} | " + " | ".join(" ".join(map(str, s.get(n, {}).get("errors", []))) for n in servers)
              + " | " + " | ".join(cell(s, n, "cpu_percent_median", ".0f") for n in servers) + " |")
    print("\nEvery run (commands/s; ! = imaptest reported errors; CPU % of a core):")
    for load, per in runs.items():
        for name, rs in per.items():
            print(f"  {load} {name}: " + ", ".join(f"{fmt_run(r)} @ {r['cpu_percent_of_core']:.0f}%" for r in rs))
    print("Medians over every run; a figure marked ! has a run with errors (or a failed run) behind it.", flush=True)


def git_state() -> dict[str, str]:
    def git(*a: str) -> str:
        r = subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else "?"

    return {"commit": git("rev-parse", "--short", "HEAD"), "src_changed": git("status", "--porcelain", "--", "src")}


def build_imaptest_binary() -> str:
    import pytest

    from conformance.imaptest_run import build_imaptest  # skips or fails as in a test when the build fails

    try:
        return build_imaptest()
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        sys.exit(f"imaptest could not be built (Debian: dovecot-dev build-essential autoconf automake libtool "
                 f"pkg-config): {exc}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--secs", type=int, default=20)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--loads", default="default,logout0", type=lambda s: s.split(","))
    ap.add_argument("--servers", default="mailcove,dovecot", type=lambda s: s.split(","))
    ap.add_argument("--login-throttle", type=int, default=0, metavar="N",
                    help="mailcove's [auth] max_failures_per_ip (default: mailcove's own, 10; before 51ea0a0 "
                         "logins in flight counted against it, refusing imaptest's clients past 10)")
    ap.add_argument("--workers", type=int, default=0, help="mailcove's serve --workers (default 0: one per core)")
    ap.add_argument("--profile", action="store_true", help="one extra profiled mailcove turn of logout0")
    tmp = Path(os.environ.get("BENCH_TMP", "/var/tmp"))
    ap.add_argument("--profile-out", type=Path, default=tmp / "imaptest-profile",
                    help="with --profile: PATH.txt gets py-spy's raw stacks, PATH.md the summary tables")
    ap.add_argument("--json", type=Path, default=None, help="write every raw figure here")
    args = ap.parse_args()
    if unknown := set(args.loads) - set(LOADS):
        sys.exit(f"unknown loads {sorted(unknown)}; known: {sorted(LOADS)}")
    if unknown := set(args.servers) - {"mailcove", "dovecot"}:
        sys.exit(f"unknown servers {sorted(unknown)}")
    if "dovecot" in args.servers and os.geteuid() != 0:
        sys.exit("bench/imaptest runs Dovecot, which must start as root")
    if args.profile and not (Path(sys.executable).parent / "py-spy").exists():  # the bench extra's binary
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy>=0.3"], check=True)
    binary = build_imaptest_binary()
    results: dict[str, Any] = {
        "command": " ".join(["python -m bench.imaptest", *sys.argv[1:]]),
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **git_state(),
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "loadavg_start": os.getloadavg(),
        "imaptest": binary,
        "settings": {k: getattr(args, k) for k in ("runs", "secs", "users", "clients", "loads", "servers",
                                                   "login_throttle", "workers")},
        "mailcove_config": mailcove_config(args.login_throttle),
    }
    dirty = " (src/ has uncommitted changes)" if results["src_changed"] not in ("", "?") else ""
    print(f"commit {results['commit']}{dirty}, load average {os.getloadavg()}", flush=True)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-imaptest-", dir=os.environ.get("BENCH_TMP")) as tmp:
        base = Path(tmp)
        base.chmod(0o755)  # Dovecot's users must reach their Maildir below it
        mbox = write_mbox(base / "sample.mbox")
        results["mbox_bytes"] = mbox.stat().st_size
        for load in args.loads:
            runs[load] = {n: [] for n in args.servers}
            for i in range(args.runs):
                for name in args.servers:
                    runs[load][name].append(turn(args, binary, mbox, name, load, base / f"{load}-{name}-{i}"))
        if args.profile:
            raw = args.profile_out.with_suffix(".txt")
            print(f"profiled turn (mailcove, logout0; py-spy -> {raw}):", flush=True)
            r = turn(args, binary, mbox, "mailcove", "logout0", base / "profile", profile_out=raw)
            results["profile_turn"] = r
            summary = summarise_profile(raw.read_text())
            md = profile_markdown(summary)
            args.profile_out.with_suffix(".md").write_text(md)
            results["profile"] = {"raw": str(raw), **summary}
            print(md, flush=True)
    summaries = [summarise(load, per) for load, per in runs.items()]
    results["summary"] = summaries
    results["runs"] = runs
    results["loadavg_end"] = os.getloadavg()
    print_table(summaries, runs, args.servers)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
        print(f"raw figures: {args.json}")


if __name__ == "__main__":
    main()
