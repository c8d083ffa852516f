"""bench/queue: outbound messages per second through the queue, mailcove against Postfix, both
relaying the same load to the same local sink (Postfix's smtp-sink), in the same run.

    .venv/bin/python -m bench.queue [--runs 3] [--messages 2000] [--conns 20] [--size 1024] [--write-docs]

For each server, smtp-source submits the messages over --conns connections (recipients in
sink.test, relayed because the client is on loopback), and the server relays them to smtp-sink
(mailcove through a [transport] entry, Postfix through transport_maps; both with their default
delivery concurrency). The rate counted is messages / (time from smtp-source's start until the
server's queue is empty): every message accepted, queued durably, delivered and removed. Queue
empty means: no row in mailcove's `queue` table; no file in Postfix's incoming, active, deferred
and maildrop directories. The servers take turns inside each run; each figure is the median.

Loopback only. Peers are installed when missing. Not part of `make test`."""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    REPO,
    Cleanup,
    bench_tmp,
    ensure_apt,
    free_port,
    load_average,
    log,
    median,
    tree_cpu_seconds,
    wait_port,
    wait_until,
)

sys.path.insert(0, str(REPO / "tests"))  # the private-Postfix config shared with the tests

from interop.postfix_conf import private_master_cf

PRESEED = ("postfix postfix/main_mailer_type select No configuration",)
DOCS = REPO / "docs" / "benchmarks.md"
SECTION = "## Outbound queue (bench/queue)"


class Sink:
    def __init__(self, cleanup: Cleanup) -> None:
        self.port = free_port()
        binary = ensure_apt("smtp-sink", "postfix", PRESEED)
        self.base = bench_tmp("mcbench-queue-sink-")
        cleanup.add("sink dir", lambda: shutil.rmtree(self.base, ignore_errors=True))
        self.counters = self.base / "counters"
        # -c: running counters on stdout ("sess=N quit=N mesg=N\r"), to check every message arrived
        with open(self.counters, "wb") as out:
            self.proc = subprocess.Popen([binary, "-c", "-u", "nobody", f"127.0.0.1:{self.port}", "512"],
                                         stdout=out, stderr=subprocess.DEVNULL)
        cleanup.process(self.proc, "smtp-sink")
        wait_port("127.0.0.1", self.port, banner=b"220")

    def received(self) -> int:
        found = re.findall(rb"mesg=(\d+)", self.counters.read_bytes()[-200:])
        return int(found[-1]) if found else 0


class Mailcove:
    name = "mailcove"

    def __init__(self, cleanup: Cleanup, sink: Sink) -> None:
        self.base = bench_tmp("mcbench-queue-mailcove-")
        cleanup.add("mailcove dir", lambda: shutil.rmtree(self.base, ignore_errors=True))
        self.port = free_port()
        cfg = self.base / "mailcove.toml"
        cfg.write_text(
            'hostname = "bench.test"\n'
            f'data_dir = "{self.base / "data"}"\n'
            "[tls]\nenabled = false\n"
            "[log]\nlevel = \"warning\"\n"
            # the bench client relays from loopback without AUTH: no hourly sending limit for it
            "[smtp]\nsend_messages_per_hour = 0\nsend_recipients_per_hour = 0\n"
            f'[transport]\n"sink.test" = "127.0.0.1:{sink.port}"\n'
        )
        argv = [sys.executable, "-m", "mailcove", "--config", str(cfg), "serve",
                "--listen", f"smtp=127.0.0.1:{self.port}"]
        for other in ("submission", "submissions", "imap", "imaps", "pop3", "pop3s", "http"):
            argv += ["--listen", f"{other}="]
        out = open(self.base / "server.out", "wb")  # noqa: SIM115 - handed to the child
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        out.close()
        cleanup.process(self.proc, "mailcove")
        wait_port("127.0.0.1", self.port, banner=b"220")
        self.db = self.base / "data" / "mail.db"
        self.pid = self.proc.pid

    def queued(self) -> int:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute("SELECT count(*) FROM queue").fetchone()[0]
        finally:
            conn.close()

    def describe(self) -> str:
        from mailcove import __version__

        return f"mailcove {__version__}, default [queue] settings (20 connections per destination), log level warning"


class Postfix:
    name = "postfix"

    def __init__(self, cleanup: Cleanup, sink: Sink) -> None:
        ensure_apt("postfix", "postfix", PRESEED)
        self.base = bench_tmp("mcbench-queue-postfix-")
        cleanup.add("postfix dir", lambda: shutil.rmtree(self.base, ignore_errors=True))
        etc, spool, lib = self.base / "etc", self.base / "spool", self.base / "lib"
        for d in (etc, spool, lib):
            d.mkdir()
        shutil.chown(lib, "postfix")
        self.spool = spool
        self.port = free_port()
        debian = Path("/usr/share/postfix/main.cf.debian")
        main = [ln for ln in debian.read_text().splitlines() if ln.strip() and not ln.startswith("#")] \
            if debian.exists() else []
        main += [
            "myhostname = bench.test", "mydestination =", "inet_interfaces = loopback-only",
            "inet_protocols = ipv4", "mynetworks = 127.0.0.0/8", "relayhost =", "alias_maps =",
            "alias_database =", "smtp_dns_support_level = disabled", "smtp_tls_security_level = none",
            "smtpd_tls_security_level = none", "message_size_limit = 67108864",
            f"transport_maps = inline:{{ sink.test=smtp:[127.0.0.1]:{sink.port} }}",
            f"queue_directory = {spool}", f"data_directory = {lib}", f"maillog_file = {self.base / 'maillog'}",
        ]
        (etc / "main.cf").write_text("\n".join(main) + "\n")
        (etc / "master.cf").write_text(private_master_cf(self.port))
        self.ctl = ["postfix", "-c", str(etc)]
        r = subprocess.run([*self.ctl, "start"], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"postfix start failed: {r.stderr}")
        cleanup.add("postfix", lambda: subprocess.run([*self.ctl, "stop"], capture_output=True))
        wait_port("127.0.0.1", self.port, banner=b"220")
        self.pid = int((spool / "pid" / "master.pid").read_text().split()[0])

    def queued(self) -> int:
        n = 0
        for d in ("maildrop", "incoming", "active", "deferred"):
            for _root, _dirs, files in os.walk(self.spool / d):
                n += len(files)
        return n

    def describe(self) -> str:
        v = subprocess.run(["postconf", "-d", "-h", "mail_version"], capture_output=True, text=True).stdout.strip()
        return f"Postfix {v} (Debian main.cf, default smtp concurrency 20 per destination)"


@dataclass
class Sample:
    peer: str
    seconds: float
    cpu: float = 0.0  # the server's CPU seconds (process tree) over the run
    ok: bool = True
    error: str = ""

    def rate(self, messages: int) -> float:
        return messages / self.seconds if self.ok and self.seconds else 0.0


def one_run(smtp_source: str, sink: Sink, peer: Mailcove | Postfix, messages: int, conns: int, size: int) -> Sample:
    wait_until(lambda: peer.queued() == 0, 120, 0.05)
    before = sink.received()
    cpu0 = tree_cpu_seconds(peer.pid)
    argv = [smtp_source, "-d", "-s", str(conns), "-m", str(messages), "-l", str(size), "-M", "client.bench",
            "-f", "bench@bench.test", "-t", "u@sink.test", f"127.0.0.1:{peer.port}"]
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        return Sample(peer.name, 0, ok=False, error=f"smtp-source: {r.stderr.strip()[-200:]}")
    if not wait_until(lambda: peer.queued() == 0, 600, 0.02):
        return Sample(peer.name, 0, ok=False, error=f"queue not empty after 600 s ({peer.queued()} left)")
    elapsed = time.perf_counter() - t0
    cpu = tree_cpu_seconds(peer.pid) - cpu0
    wait_until(lambda: sink.received() - before >= messages, 5, 0.05)  # the counters print at QUIT
    got = sink.received() - before
    if got < messages:
        return Sample(peer.name, 0, ok=False, error=f"the sink received {got} of {messages}")
    return Sample(peer.name, elapsed, cpu)


def write_docs(text: str) -> None:
    doc = DOCS.read_text()
    if SECTION in doc:
        start = doc.index(SECTION)
        nxt = re.search(r"^## ", doc[start + len(SECTION):], re.M)
        end = start + len(SECTION) + nxt.start() if nxt else len(doc)
        doc = doc[:start] + text + ("\n" if nxt else "") + doc[end:]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    DOCS.write_text(doc)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.queue")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--conns", type=int, default=20)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    cleanup = Cleanup()
    smtp_source = ensure_apt("smtp-source", "postfix", PRESEED)
    sink = Sink(cleanup)
    peers: list[Mailcove | Postfix] = [Mailcove(cleanup, sink), Postfix(cleanup, sink)]
    load0 = load_average()
    samples: dict[str, list[Sample]] = {p.name: [] for p in peers}
    for run in range(args.runs):
        order = peers if run % 2 == 0 else list(reversed(peers))
        for peer in order:
            s = one_run(smtp_source, sink, peer, args.messages, args.conns, args.size)
            samples[peer.name].append(s)
            log(f"run {run + 1} {peer.name}: " + (f"{s.rate(args.messages):.0f} msg/s ({s.seconds:.2f} s)"
                                                   if s.ok else f"FAILED {s.error}"))
    rates = {name: median([s.rate(args.messages) for s in ss]) for name, ss in samples.items()}
    cpu_us = {name: median([s.cpu / args.messages * 1e6 for s in ss if s.ok] or [0.0]) for name, ss in samples.items()}
    ratio = rates["mailcove"] / rates["postfix"] if rates["postfix"] else 0.0
    # each run's pair ran back to back under the same load: the median of the paired ratios is
    # the steadier comparison on a shared machine
    pairs = [m.rate(args.messages) / p.rate(args.messages)
             for m, p in zip(samples["mailcove"], samples["postfix"], strict=True) if m.ok and p.ok]
    paired = median(pairs) if pairs else 0.0
    lines = [
        SECTION,
        "",
        f"`.venv/bin/python -m bench.queue --runs {args.runs} --messages {args.messages} --conns {args.conns} "
        f"--size {args.size}` on {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {load0:.1f} at the start.",
        "",
        f"smtp-source submits {args.messages} messages of {args.size} bytes over {args.conns} connections; the "
        "server relays them to Postfix's smtp-sink on loopback. Rate: messages / (smtp-source start until "
        "the server's queue is empty), median of the runs; the servers take turns in each run.",
        "",
        "| server | messages/s (median) | CPU µs per message (median) | runs (messages/s) |",
        "|---|---:|---:|---|",
    ]
    for p in peers:
        runs = ", ".join(f"{s.rate(args.messages):.0f}" if s.ok else "failed" for s in samples[p.name])
        lines.append(f"| {p.describe()} | {rates[p.name]:.0f} | {cpu_us[p.name]:.0f} | {runs} |")
    cpu_ratio = cpu_us["postfix"] / cpu_us["mailcove"] if cpu_us["mailcove"] else 0.0
    lines += ["", f"mailcove / Postfix: **{ratio:.2f}x** by the median rates, **{paired:.2f}x** by the median of "
              f"each run's paired ratio, **{cpu_ratio:.2f}x** by CPU per message (target: at least 1.0x).", ""]
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        write_docs(text)
    cleanup.run()


if __name__ == "__main__":
    main()
