"""bench/store: durable deliveries per second into the store, and the UID/flags map load time.

    .venv/bin/python -m bench.store [--runs 3] [--seconds 3] [--backend sqlite|postgres|both]
                                    [--mailboxes N]

Each figure is the median of --runs runs, each in a fresh data dir. Every delivery counted has
returned from store.deliver(), i.e. its transaction is committed with synchronous=FULL (fsynced).
For SQLite it also reports the CPU time of the store's writer thread per delivery (µs, the
thread's own CPU clock read from outside it): one core's worth of that thread limits the rate.

--backend postgres runs the same against the PostgreSQL store: a private cluster from Debian's
PostgreSQL (tests/pg_testing.py: fsync and synchronous_commit on, loopback TCP), a fresh
migrated database per run; --pool-size sets the store's connection pool. `both` runs the two
backends in alternation, so each pair is measured under the same machine load.

--mailboxes N spreads the deliveries over N accounts' INBOXes, bench1..benchN@example.test, all
created before the warm-up. The deliveries are numbered 0, 1, 2, ... in the order the writers
take them (writer w takes w, w + writers, w + 2 * writers, ...) and delivery i goes to user
i mod N + 1: round robin per delivery, so one writer visits every mailbox in turn, and with as
many writers as mailboxes (50 and 50) each writer keeps to its own mailbox. The default, 1, is
the single hot mailbox of bench@example.test. The UID/flags map is always one mailbox.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mailcove.store.api import DeliveryTarget, MailStore
from mailcove.store.sqlite import SqliteStore

USER = "bench@example.test"
_PG: dict[str, Any] = {}  # "cluster": the private PgCluster, "pool_size"


def users(mailboxes: int) -> list[str]:
    """The accounts deliveries go to: the one USER, or bench1..benchN@example.test."""
    if mailboxes <= 1:
        return [USER]
    return [f"bench{n}@example.test" for n in range(1, mailboxes + 1)]


@asynccontextmanager
async def open_store(tmp: Path, backend: str) -> AsyncIterator[MailStore]:
    store: MailStore
    if backend == "postgres":
        from mailcove.store.postgres import PostgresStore

        cluster = _PG["cluster"]
        name = await asyncio.to_thread(cluster.create_database)
        store = PostgresStore(cluster.dsn(name), data_dir=tmp, watch_changes=False, pool_size=_PG["pool_size"])
    else:
        name = ""
        store = SqliteStore(tmp, watch_changes=False)
    await store.start()
    try:
        yield store
    finally:
        await store.close()
        if name:
            await asyncio.to_thread(_PG["cluster"].drop_database, name, wait=True)


def message(size: int, n: int) -> bytes:
    head = (
        b"From: Sender <sender@example.org>\r\nTo: bench@example.test\r\n"
        b"Subject: benchmark message %d\r\nMessage-ID: <%d.bench@example.org>\r\n"
        b"Date: Fri, 27 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=us-ascii\r\n\r\n" % (n, n)
    )
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    body = (line * (size // len(line) + 1))[: max(0, size - len(head))]
    return head + body


def _writer_clock() -> int | None:
    """The CPU clock of the SQLite store's writer thread (found by its name), or None."""
    for t in threading.enumerate():
        if t.name == "mailcove-store-writer" and t.ident is not None:
            return time.pthread_getcpuclockid(t.ident)
    return None


async def deliveries_per_second(
    size: int, writers: int, seconds: float, backend: str = "sqlite", mailboxes: int = 1
) -> tuple[float, float | None]:
    """(deliveries per second, writer-thread CPU µs per delivery or None without a writer thread).
    Delivery i goes to the INBOX of users(mailboxes)[i % mailboxes]."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        async with open_store(Path(tmp), backend) as store:
            accounts = users(mailboxes)
            for user in accounts:
                await store.create_account(user)
            payloads = [message(size, i) for i in range(64)]
            targets = [[DeliveryTarget(user)] for user in accounts]
            count = 0
            stop_at = 0.0

            async def worker(w: int) -> None:
                nonlocal count
                i = w
                while time.perf_counter() < stop_at:
                    await store.deliver(payloads[i % 64], targets[i % len(targets)])
                    count += 1
                    i += writers

            stop_at = time.perf_counter() + 0.3  # warm-up
            await asyncio.gather(*(worker(w) for w in range(writers)))
            count = 0
            clock = _writer_clock()
            cpu0 = time.clock_gettime(clock) if clock is not None else 0.0
            t0 = time.perf_counter()
            stop_at = t0 + seconds
            await asyncio.gather(*(worker(w) for w in range(writers)))
            elapsed = time.perf_counter() - t0
            cpu_us = (time.clock_gettime(clock) - cpu0) / count * 1e6 if clock is not None and count else None
            return count / elapsed, cpu_us


async def map_load_ms(messages: int, backend: str = "sqlite") -> tuple[float, float]:
    """Returns (cold-ish first load, median of 5 loads) in milliseconds."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        async with open_store(Path(tmp), backend) as store:
            await store.create_account(USER)
            target = [DeliveryTarget(USER)]
            data = message(512, 0)
            batch = 2000
            for start in range(0, messages, batch):
                await asyncio.gather(*(store.deliver(data, target) for _ in range(min(batch, messages - start))))
            mid = (await store.get_mailbox(USER, "INBOX")).id
            # Give some messages flags so the map is realistic.
            await store.store_flags(mid, list(range(1, messages // 2)), "+", ["\\Seen"])
            await store.store_flags(mid, list(range(1, messages // 10)), "+", ["\\Answered", "$Forwarded"])
            times = []
            for _ in range(6):
                t0 = time.perf_counter()
                idx = await store.index(mid)
                times.append((time.perf_counter() - t0) * 1000)
                assert len(idx) == messages
            return times[0], statistics.median(times[1:])


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--map-size", type=int, default=100_000)
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="sqlite")
    ap.add_argument("--pool-size", type=int, default=10, help="postgres: the store's connection pool")
    ap.add_argument("--sizes", default="1KB,100KB", help="message sizes to deliver (1KB, 100KB)")
    ap.add_argument("--writers", default="1,50", help="concurrent deliveries, comma-separated")
    ap.add_argument("--mailboxes", type=int, default=1, help="spread deliveries round robin over N accounts' INBOXes")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.mailboxes < 1:
        ap.error("--mailboxes must be at least 1")
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    if "postgres" in backends:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from pg_testing import PgCluster, pg_bindir

        bindir = pg_bindir()
        if bindir is None:
            raise SystemExit("bench.store --backend postgres needs Debian's postgresql package")
        cluster = PgCluster(bindir)
        cluster.start()
        cluster.create_template()
        _PG.update(cluster=cluster, pool_size=args.pool_size)
    sizes = {"1KB": 1024, "100KB": 100 * 1024}
    results: dict[str, float] = {"mailboxes": args.mailboxes}
    try:
        for label in args.sizes.split(","):
            for writers in (int(w) for w in args.writers.split(",")):
                runs: dict[str, list[float]] = {b: [] for b in backends}
                cpu: dict[str, list[float]] = {b: [] for b in backends}
                for _ in range(args.runs):
                    for b in backends:  # alternate, so both see the same machine load
                        rate, us = await deliveries_per_second(sizes[label], writers, args.seconds, b, args.mailboxes)
                        runs[b].append(rate)
                        if us is not None:
                            cpu[b].append(us)
                for b in backends:
                    key = f"{b}_deliver_{label}_{writers}w_per_s"
                    results[key] = statistics.median(runs[b])
                    line = f"{key}: median {results[key]:.0f}/s  runs {[round(r) for r in runs[b]]}"
                    line += f"  mailboxes {args.mailboxes}"
                    if cpu[b]:
                        ckey = f"{b}_writer_cpu_{label}_{writers}w_us"
                        results[ckey] = statistics.median(cpu[b])
                        line += f"; writer thread {results[ckey]:.1f} µs/delivery  runs {[round(c, 1) for c in cpu[b]]}"
                    print(line, flush=True)
        for b in backends:
            first, median = await map_load_ms(args.map_size, b)
            results[f"{b}_map_first_ms"] = first
            results[f"{b}_map_median_ms"] = median
            print(f"{b} uid/flags map of {args.map_size}: first {first:.1f} ms, median {median:.1f} ms", flush=True)
    finally:
        if "cluster" in _PG:
            _PG["cluster"].stop()
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
