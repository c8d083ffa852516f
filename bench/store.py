"""bench/store: durable deliveries per second into the store, and the UID/flags map load time.

    .venv/bin/python -m bench.store [--runs 3] [--seconds 3]

Each figure is the median of --runs runs, each in a fresh data dir. Every delivery counted has
returned from store.deliver(), i.e. its transaction is committed with synchronous=FULL (fsynced).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from mailcove.store.api import DeliveryTarget
from mailcove.store.sqlite import SqliteStore

USER = "bench@example.test"


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


async def deliveries_per_second(size: int, writers: int, seconds: float) -> float:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        store = SqliteStore(Path(tmp), watch_changes=False)
        await store.start()
        await store.create_account(USER)
        payloads = [message(size, i) for i in range(64)]
        target = [DeliveryTarget(USER)]
        count = 0
        stop_at = 0.0

        async def worker(w: int) -> None:
            nonlocal count
            i = w
            while time.perf_counter() < stop_at:
                await store.deliver(payloads[i % 64], target)
                count += 1
                i += writers

        stop_at = time.perf_counter() + 0.3  # warm-up
        await asyncio.gather(*(worker(w) for w in range(writers)))
        count = 0
        t0 = time.perf_counter()
        stop_at = t0 + seconds
        await asyncio.gather(*(worker(w) for w in range(writers)))
        elapsed = time.perf_counter() - t0
        await store.close()
        return count / elapsed


async def map_load_ms(messages: int) -> tuple[float, float]:
    """Returns (cold-ish first load, median of 5 loads) in milliseconds."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        store = SqliteStore(Path(tmp), watch_changes=False)
        await store.start()
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
        await store.close()
        return times[0], statistics.median(times[1:])


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--map-size", type=int, default=100_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results: dict[str, float] = {}
    for size, label in ((1024, "1KB"), (100 * 1024, "100KB")):
        for writers in (1, 50):
            runs = [await deliveries_per_second(size, writers, args.seconds) for _ in range(args.runs)]
            key = f"deliver_{label}_{writers}w_per_s"
            results[key] = statistics.median(runs)
            print(f"{key}: median {results[key]:.0f}/s  runs {[round(r) for r in runs]}", flush=True)
    first, median = await map_load_ms(args.map_size)
    results["map_first_ms"] = first
    results["map_median_ms"] = median
    print(f"uid/flags map of {args.map_size}: first {first:.1f} ms, median {median:.1f} ms", flush=True)
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
