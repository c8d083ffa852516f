"""bench/smtp: end-to-end SMTP messages/s, accepted AND stored durably, mailcove against peers.

    .venv/bin/python -m bench.smtp [--runs 3] [--write-docs] [--peers mailcove,postfix-default,...]

In one run on this machine, for each cell (1 and 50 connections x 1 KB and 100 KB bodies) and
each server, Postfix's smtp-source sends the messages (-d: connections stay open, as a busy MX
sees them), and the rate counted is messages / (time from smtp-source's start until the last
one is in the recipient's mailbox). "In the mailbox" means: mailcove's INBOX message count
through the store API; the Maildir/new file count for Postfix (local(8), after its queue) and
for aiosmtpd. The servers take turns inside each run (the order rotates between runs), so noise
from other work on the shared machine falls on all of them; each figure is the median of --runs.

Latency (1 KB, 50 connections) is measured with bench/smtp/latency.py, a Python client, since
smtp-source does not report it.

Peers are installed when missing (apt-get postfix, pip aiosmtpd) and every process started is
stopped at exit. Loopback only. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.common import REPO, Cleanup, bench_tmp, fsync_probe, load_average, log, tree_cpu_seconds, wait_until
from bench.smtp import profile, report
from bench.smtp.peers import (
    AiosmtpdPeer,
    MailcovePeer,
    Peer,
    PostfixPeer,
    SinkPeer,
    ensure_aiosmtpd,
    ensure_postfix,
    ensure_postfix_user,
    mailcove_available,
)

ALL_PEERS = ("mailcove", "postfix-default", "postfix-tuned", "aiosmtpd", "smtp-sink")
# (connections, body bytes, messages per run). Counts give runs of a few seconds each.
CELLS = ((50, 1024, 5000), (1, 1024, 1000), (50, 102400, 2000), (1, 102400, 500))
CELLS_ALL = CELLS


@dataclass
class Sample:
    peer: str
    conns: int
    size: int
    messages: int
    accept_s: float  # smtp-source start to exit: every message acknowledged
    stored_s: float  # smtp-source start until the mailbox held all of them
    cpu_s: float  # server process tree CPU over the run, including the drain
    # After the last message was stored: until deferred work (mailcove's full-text index) was
    # done, and the server's CPU over the run including it (0 for runs before this was measured).
    settle_s: float = 0.0
    settled_cpu_s: float = 0.0
    ok: bool = True
    error: str = ""

    @property
    def stored_rate(self) -> float:
        return self.messages / self.stored_s if self.ok else float("nan")

    @property
    def accepted_rate(self) -> float:
        return self.messages / self.accept_s if self.ok else float("nan")


@dataclass
class Latency:
    peer: str
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    count: int


@dataclass
class Results:
    command: str
    started: str
    commit: str
    machine: str
    peers: dict[str, str] = field(default_factory=dict)
    # (when, new-file fsync probe ms, 1-minute load average): the machine is shared.
    conditions: list[tuple[str, float, float]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    latency: list[Latency] = field(default_factory=list)


def load_results(path: Path) -> Results:
    raw = json.loads(path.read_text())
    res = Results(raw["command"], raw["started"], raw["commit"], raw["machine"], raw["peers"])
    res.conditions = [tuple(c) for c in raw.get("conditions", [])]
    res.samples = [Sample(**s) for s in raw["samples"]]
    res.latency = [Latency(**x) for x in raw["latency"]]
    return res


def smtp_source_run(smtp_source: str, peer: Peer, conns: int, size: int, messages: int, timeout: float) -> Sample:
    peer.reset()
    before = peer.stored()
    cpu0 = tree_cpu_seconds(peer.pid)
    argv = [smtp_source, "-d", "-s", str(conns), "-m", str(messages), "-l", str(size)]
    argv += ["-M", "client.example.org", "-f", "bench@example.org", "-t", peer.recipient, f"127.0.0.1:{peer.port}"]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Sample(peer.name, conns, size, messages, 0, 0, 0, ok=False, error="smtp-source timed out")
    t1 = time.perf_counter()
    if r.returncode != 0:
        error = f"smtp-source: {r.stderr.strip()[-300:]}"
        return Sample(peer.name, conns, size, messages, 0, 0, 0, ok=False, error=error)
    if isinstance(peer, SinkPeer):
        return Sample(peer.name, conns, size, messages, t1 - t0, t1 - t0, tree_cpu_seconds(peer.pid) - cpu0)
    done_at = [0.0]

    def all_stored() -> bool:
        t = time.perf_counter()
        if peer.stored() - before >= messages:
            done_at[0] = t  # when the successful look began: everything was stored by then
            return True
        return False

    if not wait_until(all_stored, timeout=timeout, interval=0.01):
        got = peer.stored() - before
        return Sample(peer.name, conns, size, messages, t1 - t0, 0, 0, ok=False, error=f"only {got} stored")
    cpu = tree_cpu_seconds(peer.pid) - cpu0
    extra = 0 if isinstance(peer, SinkPeer) else peer.stored() - before - messages
    error = f"{extra} more stored than sent" if extra else ""
    t2 = time.perf_counter()
    if not wait_until(peer.settled, timeout=timeout, interval=0.05):
        error = error or "deferred work not done in time"
    settle = time.perf_counter() - t2
    return Sample(peer.name, conns, size, messages, t1 - t0, done_at[0] - t0, cpu,
                  settle_s=settle, settled_cpu_s=tree_cpu_seconds(peer.pid) - cpu0, ok=not error, error=error)


def latency_run(peer: Peer, conns: int, per_conn: int) -> Latency | None:
    peer.reset()
    before = peer.stored()
    argv = [sys.executable, "-m", "bench.smtp.latency", "--port", str(peer.port), "--to", peer.recipient]
    argv += ["--conns", str(conns), "--messages", str(per_conn), "--size", "1024"]
    r = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=300)
    if r.returncode != 0:
        log(f"latency client failed against {peer.name}: {r.stderr.strip()[-500:]}")
        return None
    data = json.loads(r.stdout)
    # Let a queueing peer finish delivering before the next one starts.
    sent = conns * (per_conn + 2)
    wait_until(lambda: peer.stored() - before >= sent, timeout=120, interval=0.05)
    return Latency(peer.name, data["p50_ms"], data["p90_ms"], data["p99_ms"], data["max_ms"], data["count"])


def build_peers(names: list[str], cleanup: Cleanup, log_level: str, workers: int = 0) -> list[Peer]:
    peers: list[Peer] = []
    home = None
    for name in names:
        if name == "mailcove":
            if not mailcove_available():
                log("mailcove has no SMTP server yet (src/mailcove/smtp/server.py): skipping it")
                continue
            peers.append(MailcovePeer(cleanup, log_level, workers))
        elif name.startswith("postfix"):
            ensure_postfix()
            if home is None:
                home = ensure_postfix_user(cleanup)
            peers.append(PostfixPeer(cleanup, tuned=name == "postfix-tuned", home=home))
        elif name == "smtp-sink":
            peers.append(SinkPeer(cleanup))
        elif name == "aiosmtpd":
            ensure_aiosmtpd()
            peers.append(AiosmtpdPeer(cleanup))
        else:
            raise SystemExit(f"unknown peer {name!r} (known: {', '.join(ALL_PEERS)})")
    return peers


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.smtp", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--peers", default=",".join(ALL_PEERS))
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every cell's message count")
    ap.add_argument("--cells", default="all", help="e.g. 50x1024,1x102400 (default: all four)")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--latency-messages", type=int, default=40, help="counted messages per connection")
    ap.add_argument("--log-level", default="info", help="mailcove's [log] level during the bench")
    ap.add_argument(
        "--mailcove-workers", type=int, default=0, help="mailcove's [server] workers (0: its default, one per core)"
    )
    ap.add_argument(
        "--profile", type=Path, help="after the runs, py-spy mailcove under the 50-connection cells into DIR"
    )
    ap.add_argument("--json", type=Path, help="also write the raw samples here")
    ap.add_argument("--write-docs", action="store_true", help="replace the SMTP section of docs/benchmarks.md")
    ap.add_argument("--from-json", type=Path, help="no measuring: print (and --write-docs) a saved --json result")
    args = ap.parse_args()
    if args.from_json:
        saved = load_results(args.from_json)
        seen = {(s.conns, s.size, s.messages) for s in saved.samples}
        text = report.markdown(saved, [c for c in CELLS_ALL if c in seen] or sorted(seen, reverse=True))
        print(text)
        if args.write_docs:
            report.write_docs(REPO / "docs" / "benchmarks.md", text)
        return

    cells = [(c, s, max(1, int(m * args.scale))) for c, s, m in CELLS]
    if args.cells != "all":
        wanted = {tuple(int(x) for x in cell.split("x")) for cell in args.cells.split(",")}
        cells = [cell for cell in cells if (cell[0], cell[1]) in wanted]

    cleanup = Cleanup()
    ensure_postfix()  # smtp-source drives every server
    smtp_source = "/usr/sbin/smtp-source"
    peers = build_peers(args.peers.split(","), cleanup, args.log_level, args.mailcove_workers)
    command = "python -m bench.smtp " + " ".join(sys.argv[1:])
    results = Results(
        command=command.strip(),
        started=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        commit=subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
        ).stdout.strip(),
        machine=f"{os.cpu_count()} cores, {os.uname().release}, Python {sys.version.split()[0]}",
    )
    for peer in peers:
        log(f"starting {peer.name}")
        peer.start()
        results.peers[peer.name] = peer.describe()
        # Warm-up, not counted: Postfix spawns its daemons on demand, Python imports lazily.
        smtp_source_run(smtp_source, peer, 20, 1024, 400, timeout=120)

    probe_dir = bench_tmp("mcbench-probe-")
    cleanup.add("probe dir", lambda: probe_dir.rmdir())

    def conditions(when: str) -> None:
        ms, load = fsync_probe(probe_dir), load_average()
        results.conditions.append((when, ms, load))
        log(f"conditions {when}: new-file fsync {ms:.2f} ms, load average {load:.1f}")

    for run in range(args.runs):
        conditions(f"before run {run + 1}")
        for conns, size, messages in cells:
            order = peers[run % len(peers) :] + peers[: run % len(peers)]
            for peer in order:
                timeout = 60 + messages / 20
                s = smtp_source_run(smtp_source, peer, conns, size, messages, timeout)
                results.samples.append(s)
                status = f"{s.stored_rate:8.1f}/s stored, {s.accepted_rate:8.1f}/s accepted, "
                status += (f"{s.cpu_s * 1000 / messages:.2f} ms CPU/msg, {s.settled_cpu_s * 1000 / messages:.2f} "
                           f"with deferred work done {s.settle_s:.1f} s later") if s.ok else f"FAILED: {s.error}"
                log(f"run {run + 1} {peer.name:16} {conns:2} conns {size:6} B x{messages}: {status}")
        if not args.no_latency:
            for peer in peers:
                if isinstance(peer, SinkPeer):
                    continue
                lat = latency_run(peer, 50, args.latency_messages)
                if lat:
                    results.latency.append(lat)
                    log(f"run {run + 1} {peer.name:16} latency p50 {lat.p50_ms:.2f} ms, p99 {lat.p99_ms:.2f} ms")

    conditions("after the runs")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(asdict(results), indent=1))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        for peer in peers:
            if not isinstance(peer, MailcovePeer):
                continue
            for conns, size, messages in cells:
                if conns != 50:
                    continue
                out = args.profile / f"mailcove-{conns}x{size}.txt"

                def load(peer: Peer = peer, conns: int = conns, size: int = size, messages: int = messages) -> None:
                    smtp_source_run(smtp_source, peer, conns, size, messages, timeout=600)

                summary = profile.record(peer.pid, out, load)
                print(f"\n### py-spy, mailcove, {conns} connections, {size} B\n\n" + summary[:6000])

    text = report.markdown(results, cells)
    print(text)
    if args.write_docs:
        report.write_docs(REPO / "docs" / "benchmarks.md", text)
        log("docs/benchmarks.md: SMTP section updated")
    cleanup.run()


if __name__ == "__main__":
    main()


__all__ = ["Latency", "Results", "Sample"]
