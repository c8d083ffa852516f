"""bench/imap: mailcove's IMAP server against Dovecot (Debian's dovecot-imapd) in the same run.

    .venv/bin/python -m bench.imap [--runs 3] [--only a,b,c,d,e,f] [--big 100000] [--idle 10000] [--fts 100000]

(a) SELECT then UID FETCH 1:* (FLAGS) on a --big message mailbox; (b) UID SEARCH by header and by
body over --mid messages; (c) FETCH BODY[] of 1,000 messages; (d) --clients concurrent clients
doing login, select, fetch, store, append, expunge and idle for --seconds; (e) server memory (PSS,
summed over every process of the server: /proc/PID/smaps_rollup) and CPU of --idle IDLE
connections, over plain TCP and over TLS; (f) UID SEARCH BODY/TEXT on --fts messages with the
full-text index and without it, the index's size and build time, and the CPU a delivery costs with
indexing (bench/imap/fts.py; --fts-store postgres: mailcove on a private PostgreSQL; --fts-dovecot:
Dovecot with Debian's dovecot-fts-xapian).

Each figure is the median of --runs runs, the two servers taking turns. Both get the same
messages (bench/imap/fill.py). Must run as root (Dovecot drops to its own users). Debian has no
imaptest, so (d) is this package's own asyncio load generator (mixed.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))  # the Dovecot and mailcove helpers shared with the tests

from bench.imap import fts, idle, mixed  # noqa: E402
from bench.imap.client import Client  # noqa: E402
from bench.imap.fill import dovecot_fill, mailcove_fill, message, sizes  # noqa: E402
from interop.dovecot import PrivateDovecot  # noqa: E402
from interop.imap_servers import start_mailcove  # noqa: E402

PASSWORD = "Bench-Pass-1"


@dataclass
class Peer:
    name: str
    host: str
    port: int
    tls_port: int
    pids: Callable[[], list[int]]
    stop: Callable[[], None]
    logs: Callable[[], str] = lambda: ""


def mailcove_peer(base: Path, users: list[str], boxes: dict[str, list[bytes]]) -> Peer:
    srv = start_mailcove(
        base,
        dict.fromkeys(users, PASSWORD),
        before_start=lambda cfg, data: mailcove_fill(cfg, data, boxes) if boxes else None,
    )
    return peer_of(srv)


def peer_of(srv: Any) -> Peer:
    host, port = srv.address("imap")
    _, tls_port = srv.address("imaps")
    return Peer("mailcove", host, port, tls_port, lambda: process_tree(srv.pid), srv.stop, srv.logs)


def dovecot_peer(base: Path, users: list[str], boxes: dict[str, list[bytes]], many: int = 0) -> Peer:
    dc = PrivateDovecot(dict.fromkeys(users, PASSWORD), tls=True, many_connections=many, base=base)
    dovecot_fill(dc.dir / "mail", boxes)
    dc.start()
    for user in boxes:
        dc.doveadm("force-resync", "-u", user, "INBOX")
    return dovecot_peer_of(dc)


def dovecot_peer_of(dc: PrivateDovecot) -> Peer:
    return Peer("dovecot", dc.host, dc.port, dc.tls_port, dc.pids, dc.cleanup, dc.logs)


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
                ppid = int(stat.rpartition(")")[2].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
            except (OSError, ValueError):
                continue
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


# --- scenarios ------------------------------------------------------------------------------------


async def session(peer: Peer, user: str) -> Client:
    c = await Client.connect(peer.host, peer.port)
    await c.login(user, PASSWORD)
    return c


async def select_fetch_flags(peer: Peer, user: str) -> float:
    c = await session(peer, user)
    t0 = time.perf_counter()
    await c.command(b"SELECT INBOX")
    lines = await c.command(b"UID FETCH 1:* (FLAGS)")
    elapsed = time.perf_counter() - t0
    await c.logout()
    assert len(lines) >= 1000, f"{peer.name}: only {len(lines)} FETCH lines"
    return elapsed * 1000


async def search(peer: Peer, user: str, criteria: bytes) -> float:
    c = await session(peer, user)
    await c.command(b"EXAMINE INBOX")
    t0 = time.perf_counter()
    lines = await c.command(b"UID SEARCH " + criteria)
    elapsed = time.perf_counter() - t0
    await c.logout()
    assert lines and len(lines[0].split()) > 2, f"{peer.name}: SEARCH {criteria!r} found nothing: {lines[:1]!r}"
    return elapsed * 1000


async def fetch_bodies(peer: Peer, user: str, count: int) -> float:
    c = await session(peer, user)
    await c.command(b"EXAMINE INBOX")
    t0 = time.perf_counter()
    lines = await c.command(b"FETCH 1:%d (BODY.PEEK[])" % count)
    elapsed = time.perf_counter() - t0
    await c.logout()
    assert len(lines) == count, f"{peer.name}: {len(lines)} FETCH responses"
    return elapsed * 1000


async def attempt(p: Peer, fn: Callable[[Peer], Awaitable[float]]) -> float:
    """One measurement; a failure is reported with the server's log tail and tried once more."""
    for n in (1, 2):
        try:
            return await fn(p)
        except (ConnectionError, OSError, AssertionError) as exc:
            print(f"  {p.name} failed ({exc!r}), try {n}:\n{p.logs()[-3000:]}", flush=True)
            if n == 2:
                raise
    raise AssertionError("unreachable")


async def median_of(runs: int, peers: list[Peer], fn: Callable[[Peer], Awaitable[float]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {p.name: [] for p in peers}
    for p in peers:  # one untimed warm-up each: Dovecot builds its caches on first use, mailcove its maps
        await attempt(p, fn)
    for _ in range(runs):
        for p in peers:
            out[p.name].append(await attempt(p, fn))
    return out


def report(results: dict[str, Any], key: str, values: dict[str, list[float]], unit: str, higher_better: bool) -> None:
    med = {k: statistics.median(v) for k, v in values.items()}
    mc, dc = med.get("mailcove"), med.get("dovecot")
    ratio = None
    if mc and dc:
        ratio = (mc / dc) if higher_better else (dc / mc)  # >1: mailcove is better
    results[key] = {"unit": unit, "median": med, "runs": values, "mailcove_vs_dovecot": ratio}
    r = f"  ratio (mailcove speed / dovecot speed) {ratio:.2f}x" if ratio else ""
    print(f"{key}: " + ", ".join(f"{k} {v:.1f} {unit}" for k, v in med.items()) + r, flush=True)


async def run_abcd(args: argparse.Namespace, results: dict[str, Any], base: Path) -> None:
    only = set(args.only)
    boxes: dict[str, list[bytes]] = {}
    users = ["mid@hamap.local"] + [f"mix{i}@hamap.local" for i in range(args.mix_users)]
    if "a" in only:
        users.append("big@hamap.local")
        boxes["big@hamap.local"] = [message(n, s) for n, s in enumerate(sizes(args.big, small=True))]
    if only & {"b", "c"}:
        boxes["mid@hamap.local"] = [message(n, s) for n, s in enumerate(sizes(args.mid, small=False))]
    if "d" in only:
        for i in range(args.mix_users):
            boxes[f"mix{i}@hamap.local"] = [message(n, s) for n, s in enumerate(sizes(1000, small=True, seed=i))]
    t0 = time.perf_counter()
    peers = [mailcove_peer(base / "mailcove", users, boxes)]
    print(f"mailcove filled and started in {time.perf_counter() - t0:.0f} s", flush=True)
    t0 = time.perf_counter()
    peers.append(dovecot_peer(base, users, boxes))
    print(f"dovecot filled and started in {time.perf_counter() - t0:.0f} s", flush=True)
    try:
        if "a" in only:
            v = await median_of(args.runs, peers, lambda p: select_fetch_flags(p, "big@hamap.local"))
            report(results, f"a_select_uid_fetch_flags_{args.big}", v, "ms", higher_better=False)
        if "b" in only:
            for label, crit in (
                ("header", b'HEADER Subject "topic42"'),
                ("from", b"FROM sender7"),
                ("body", b"BODY needle123"),
                ("text", b"TEXT needle77"),
            ):
                v = await median_of(args.runs, peers, lambda p, c=crit: search(p, "mid@hamap.local", c))
                report(results, f"b_search_{label}_{args.mid}", v, "ms", higher_better=False)
        if "c" in only:
            v = await median_of(args.runs, peers, lambda p: fetch_bodies(p, "mid@hamap.local", 1000))
            report(results, "c_fetch_body_1000", v, "ms", higher_better=False)
        if "d" in only:
            per: dict[str, list[float]] = {p.name: [] for p in peers}
            logins: dict[str, list[float]] = {p.name: [] for p in peers}
            for _ in range(args.runs):
                for p in peers:
                    r = await mixed.run(
                        p.host, p.port, [f"mix{i}@hamap.local" for i in range(args.mix_users)], PASSWORD,
                        clients=args.clients, seconds=args.seconds,
                    )
                    per[p.name].append(r.commands_per_s)
                    logins[p.name].append(r.logins_per_s)
                    print(f"  d run {p.name}: {r}", flush=True)
            report(results, f"d_mixed_{args.clients}_clients", per, "commands/s", higher_better=True)
            report(results, f"d_mixed_{args.clients}_clients_logins", logins, "logins/s", higher_better=True)
    finally:
        for p in peers:
            p.stop()


async def run_e(args: argparse.Namespace, results: dict[str, Any], base: Path) -> None:
    for tls in (False, True):
        kind = "tls" if tls else "plain"
        if kind not in args.idle_kinds:
            continue
        for name in args.servers:
            n = args.idle if name == "mailcove" else args.dovecot_idle
            pss, cpu = [], []
            for run in range(args.idle_runs):
                sub = base / f"e-{name}-{kind}-{run}"
                sub.mkdir()
                users = ["idle@hamap.local"]
                boxes = {"idle@hamap.local": [message(i, 800) for i in range(20)]}
                peer = (
                    mailcove_peer(sub, users, boxes) if name == "mailcove" else dovecot_peer(sub, users, boxes, many=n)
                )
                try:
                    r = await idle.measure(peer, "idle@hamap.local", PASSWORD, n, tls=tls, source_block=run * 2 + tls)
                finally:
                    peer.stop()
                print(f"  e {name} {kind} run {run}: {r}", flush=True)
                pss.append(r.pss_per_conn_kb)
                cpu.append(r.cpu_percent)
            results[f"e_idle_{kind}_{name}"] = {
                "connections": n,
                "pss_per_conn_kb_median": statistics.median(pss),
                "cpu_percent_of_core_median": statistics.median(cpu),
                "runs_pss_kb": pss,
                "runs_cpu": cpu,
            }
            print(
                f"e_idle_{kind} {name}: {n} conns, {statistics.median(pss):.1f} KB PSS/conn, "
                f"{statistics.median(cpu):.2f}% of a core",
                flush=True,
            )


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="a,b,c,d,e", type=lambda s: s.split(","))
    ap.add_argument("--big", type=int, default=100_000)
    ap.add_argument("--mid", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--mix-users", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--idle", type=int, default=10_000)
    ap.add_argument("--dovecot-idle", type=int, default=None, help="idle connections for Dovecot (default --idle)")
    ap.add_argument("--idle-runs", type=int, default=None, help="runs of (e) (default --runs)")
    ap.add_argument("--servers", default="mailcove,dovecot", type=lambda s: s.split(","), help="for (e) only")
    ap.add_argument("--idle-kinds", default="plain,tls", type=lambda s: s.split(","), help="for (e): plain, tls")
    ap.add_argument("--fts", type=int, default=100_000, help="(f): messages in the full-text search mailbox")
    ap.add_argument("--fts-scan-runs", type=int, default=None, help="(f): runs without the index (default --runs)")
    ap.add_argument("--fts-mailcove", action=argparse.BooleanOptionalAction, default=True,
                    help="(f): mailcove with and without the index, and the delivery CPU")
    ap.add_argument("--fts-dovecot", action=argparse.BooleanOptionalAction, default=True,
                    help="(f): also Dovecot with Debian's dovecot-fts-xapian")
    ap.add_argument("--fts-store", choices=("sqlite", "postgres"), default="sqlite",
                    help="(f): mailcove's store (postgres: a private cluster, tests/pg_testing.py)")
    ap.add_argument("--fts-xapian-partial", type=int, default=2, help="(f): fts_xapian partial= (shortest n-gram)")
    ap.add_argument("--fts-cpu", type=int, default=20_000, help="(f): messages delivered to measure CPU per message")
    ap.add_argument("--json", type=Path, default=None, help="write the results here too")
    args = ap.parse_args()
    if args.dovecot_idle is None:
        args.dovecot_idle = args.idle
    if args.idle_runs is None:
        args.idle_runs = args.runs
    if args.fts_scan_runs is None:
        args.fts_scan_runs = args.runs
    if os.geteuid() != 0:
        sys.exit("bench/imap runs Dovecot, which must start as root")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by both servers
    results: dict[str, Any] = {
        "command": " ".join(["python -m bench.imap", *sys.argv[1:]]),
        "machine": f"{os.cpu_count()} cores, {platform.python_version()}",
        "nofile": hard,
    }
    with tempfile.TemporaryDirectory(prefix="bench-imap-", dir=os.environ.get("BENCH_TMP")) as tmp:
        base = Path(tmp)
        base.chmod(0o755)  # Dovecot's users must reach their Maildir below it
        if set(args.only) & {"a", "b", "c", "d"}:
            await run_abcd(args, results, base)
        if "e" in args.only:
            await run_e(args, results, base)
        if "f" in args.only:
            await fts.run_f(args, results, base, PASSWORD, peer_of, dovecot_peer_of, search, median_of, report)
    text = json.dumps(results, indent=1)
    if args.json:
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    asyncio.run(main())
