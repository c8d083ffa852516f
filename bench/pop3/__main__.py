"""bench/pop3: mailcove's POP3 against Dovecot's (Debian dovecot-pop3d), same machine, same run.

    .venv/bin/python -m bench.pop3 [--runs 3] [--messages 1000] [--sessions 50] [--size 3000]

Both servers get the same messages (byte for byte, CRLF): mailcove through its store API,
Dovecot as Maildir files. Both listen on loopback without TLS (the seed's lab set-up) and are
driven by the same client (bench/pop3/client.py). Two workloads, each run --runs times,
alternating servers, after an unmeasured warm-up (a session per user, then a parallel round):
both servers then have their indexes and caches warm.

  single     one session: USER/PASS, STAT, LIST, UIDL, RETR of every message, QUIT
  parallel   --sessions sessions at once, one user each (POP3 locks a maildrop per user), each
             doing the same

Figures are messages retrieved per second (the median of the runs) and their ratio
mailcove / Dovecot (the target, issue 5, is at least 0.5), and the server CPU time per message
(/proc utime+stime of mailcove's process; of every process in Dovecot's session plus what its
master reaped). On a shared, loaded machine the wall-clock rates swing from run to run; CPU per
message is much steadier.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))  # the private Dovecot shared with the tests and bench/imap

from bench.pop3.client import run_session, run_sessions  # noqa: E402
from interop.dovecot import PrivateDovecot  # noqa: E402

PASSWORD = "It1"


def make_messages(n: int, size: int) -> list[bytes]:
    """Plain-text mail of about `size` bytes; every fifth body line starts with a dot, so
    byte-stuffing is part of the work."""
    out = []
    for i in range(n):
        head = (
            b"Return-Path: <sender@example.org>\r\n"
            b"Received: from client.example.org (client.example.org [192.0.2.1])\r\n"
            b"\tby mx1.hamap.local with ESMTP id bench%d; Fri, 27 Nov 2026 10:00:00 +0000\r\n"
            b"From: Sender <sender@example.org>\r\nTo: user@hamap.local\r\n"
            b"Subject: benchmark message %d\r\nMessage-ID: <%d.bench@example.org>\r\n"
            b"Date: Fri, 27 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=us-ascii\r\n\r\n" % (i, i, i)
        )
        lines = []
        total = len(head)
        k = 0
        while total < size:
            line = (b".%d the quick brown fox jumps over the lazy dog\r\n" if k % 5 == 0 else
                    b"%d the quick brown fox jumps over the lazy dog, again and again\r\n") % k
            lines.append(line)
            total += len(line)
            k += 1
        out.append(head + b"".join(lines))
    return out


class Mailcove:
    """`mailcove serve` in a subprocess with only the pop3 listener, lab mode, TLS off."""

    def __init__(self, users: Sequence[str], base: str | None = None) -> None:
        self.users = list(users)
        self.dir = Path(tempfile.mkdtemp(prefix="bench-mailcove-pop3-", dir=base))
        self.data = self.dir / "data"
        self.config = self.dir / "mailcove.toml"
        self.config.write_text(
            # verify_cache_seconds: the warm-up logs every user in once; on a loaded machine it can
            # take longer than the default 300 s, and the measured rounds should not re-run argon2
            # (Dovecot's passwd-file here is {PLAIN}, no hashing at all).
            'hostname = "mx1.hamap.local"\n[auth]\nallow_plaintext = true\nverify_cache_seconds = 3600\n'
            "[tls]\nenabled = false\n"
            "[log]\nlevel = \"warning\"\n"
        )
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def _settings(self):  # type: ignore[no-untyped-def]
        from mailcove.config import load_settings

        return load_settings(self.config, data_dir=str(self.data))

    def fill(self, messages: Sequence[bytes]) -> None:
        from mailcove.admin.context import open_admin
        from mailcove.admin.domains import add_domain
        from mailcove.admin.users import add_user
        from mailcove.store.api import DeliveryTarget

        async def go() -> None:
            async with open_admin(self._settings()) as ctx:
                await add_domain(ctx, "hamap.local")
                for u in self.users:
                    await add_user(ctx, u, PASSWORD)
                store = await ctx.store()
                targets = [DeliveryTarget(u) for u in self.users]
                # One stored body per message, one row per user (the way SMTP delivers).
                for i in range(0, len(messages), 100):
                    await asyncio.gather(*(store.deliver(m, targets) for m in messages[i : i + 100]))

        asyncio.run(go())

    def start(self, timeout: float = 60.0) -> Mailcove:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        listen = [f"--listen=pop3=127.0.0.1:{self.port}"] + [
            f"--listen={name}=" for name in ("smtp", "submission", "submissions", "imap", "imaps", "pop3s", "http")
        ]
        out = open(self.dir / "stdout.txt", "wb")  # noqa: SIM115 - handed to the child
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p)
        argv = [sys.executable, "-m", "mailcove", "--config", str(self.config), "--data", str(self.data), "serve"]
        argv += ["--user", "root"]  # the data dir is root's, under a 0700 dir the mailcove account cannot reach
        self.proc = subprocess.Popen(
            [*argv, *listen],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b"\nready\n" in (self.dir / "stdout.txt").read_bytes():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError((self.dir / "stdout.txt").read_text(errors="replace"))
            time.sleep(0.05)
        raise RuntimeError("mailcove serve did not start")

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _loop_runner() -> asyncio.Runner:
    try:
        import uvloop

        return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        return asyncio.Runner()


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int, children: bool = False) -> float:
    """utime + stime of a process (all its threads), plus its reaped children's when asked."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICK


def server_cpu(pid: int, tree: bool) -> float:
    """CPU seconds used so far by a server. tree: every process in the pid's session (Dovecot's
    master, auth, log, login and per-connection pop3 processes), plus what the master reaped."""
    if not tree:
        return _cpu(pid)
    total = _cpu(pid, children=True)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != pid:
            try:
                if os.getsid(int(entry.name)) == pid:
                    total += _cpu(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
    return total


def measure(
    runner: asyncio.Runner, port: int, users: list[str], retr: int, parallel: bool, pid: int, tree: bool
) -> tuple[float, float]:
    """(messages retrieved per second, server CPU milliseconds per message) in one round."""
    before = server_cpu(pid, tree)
    if parallel:
        seconds, results = runner.run(run_sessions("127.0.0.1", port, users, PASSWORD, retr))
        messages = sum(r.messages for r in results)
    else:
        result = runner.run(run_session("127.0.0.1", port, users[0], PASSWORD, retr))
        seconds, messages = result.seconds, result.messages
    time.sleep(0.2)  # let Dovecot reap its finished pop3 processes, so their CPU time is counted
    cpu = server_cpu(pid, tree) - before
    return messages / seconds, 1000 * cpu / messages


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.pop3", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--size", type=int, default=3000, help="approximate message size, bytes")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args(argv)

    users = [f"bench{i}@hamap.local" for i in range(args.sessions)]
    messages = make_messages(args.messages, args.size)
    base = os.environ.get("BENCH_TMP")
    print(f"{args.messages} messages of ~{args.size} bytes, {args.sessions} users; preparing both servers...")
    dc = PrivateDovecot({u: PASSWORD for u in users}, protocol="pop3", many_connections=args.sessions, base=base)
    mc = Mailcove(users, base=base)
    results: dict[str, dict[str, list[float]]] = {
        "mailcove": {"single": [], "parallel": []},
        "dovecot": {"single": [], "parallel": []},
    }
    cpu_ms: dict[str, dict[str, list[float]]] = {
        "mailcove": {"single": [], "parallel": []},
        "dovecot": {"single": [], "parallel": []},
    }
    try:
        dc.fill(messages)
        dc.start()
        mc.fill(messages)
        mc.start()
        assert mc.proc is not None and dc.proc is not None
        servers = {"mailcove": (mc.port, mc.proc.pid, False), "dovecot": (dc.port, dc.proc.pid, True)}
        with _loop_runner() as runner:
            # Warm-up, unmeasured: one session per user, one after the other (50 first logins at
            # once would exceed mailcove's queue of password verifications and get [SYS/TEMP]),
            # then a parallel round. Afterwards both servers have their indexes and caches warm
            # (Dovecot's index files, mailcove's size/UIDL cache and verified-password cache).
            for port, pid, tree in servers.values():
                for u in users:
                    runner.run(run_session("127.0.0.1", port, u, PASSWORD, 0))
                measure(runner, port, users, args.messages, True, pid, tree)
            for run in range(args.runs):
                for workload in ("single", "parallel"):
                    for name, (port, pid, tree) in servers.items():
                        rate, cpu = measure(runner, port, users, args.messages, workload == "parallel", pid, tree)
                        results[name][workload].append(rate)
                        cpu_ms[name][workload].append(cpu)
                        print(
                            f"  run {run + 1} {workload:8} {name:8} {rate:8.0f} messages/s  "
                            f"{cpu:6.3f} ms server CPU per message",
                            flush=True,
                        )
    finally:
        mc.cleanup()
        dc.cleanup()

    print()
    print(f"machine: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
          f"{dc.version() and 'Dovecot ' + dc.version()}")
    print("| workload | mailcove msg/s | Dovecot msg/s | ratio | mailcove CPU ms/msg | Dovecot CPU ms/msg "
          "| CPU ratio |")
    print("|---|---|---|---|---|---|---|")
    summary = {}
    for workload, label in (
        ("single", f"1 session: STAT, LIST, UIDL, RETR x {args.messages}"),
        ("parallel", f"{args.sessions} sessions at once, the same each"),
    ):
        m = statistics.median(results["mailcove"][workload])
        d = statistics.median(results["dovecot"][workload])
        mc_cpu = statistics.median(cpu_ms["mailcove"][workload])
        dc_cpu = statistics.median(cpu_ms["dovecot"][workload])
        summary[workload] = {
            "mailcove": m, "dovecot": d, "ratio": m / d,
            "mailcove_cpu_ms": mc_cpu, "dovecot_cpu_ms": dc_cpu, "cpu_ratio": dc_cpu / mc_cpu,
        }
        print(
            f"| {label} | {m:,.0f} | {d:,.0f} | {m / d:.2f}x | {mc_cpu:.3f} | {dc_cpu:.3f} | {dc_cpu / mc_cpu:.2f}x |"
        )
    print("(ratio: mailcove/Dovecot throughput; CPU ratio: Dovecot CPU / mailcove CPU per message, i.e. "
          "mailcove's efficiency relative to Dovecot; both >= 1.0 mean mailcove is at least as good)")
    if args.json:
        print(json.dumps({"args": vars(args), "runs": results, "cpu_ms": cpu_ms, "median": summary}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
