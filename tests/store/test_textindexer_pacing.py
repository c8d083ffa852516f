"""The background indexer gives way to mail arriving (store/textindexer.py): while a message is
being added in its process, or one was begun since its last look, it rests after each batch (at
least REST, LOAD_SHARE of the time at most), yet still indexes one batch per rest so a steady
stream never starves it; with nothing arriving it indexes batch after batch without resting.

Time is a FakeClock. A batch costs no fake time by itself, so the store's `index_pending` is
wrapped to say how long each batch "took" (the clock's reading moves by that much) and to let
the test wait, in real time, until no batch is running before it moves the clock: otherwise
the clock would run ahead of an indexer busy in SQLite's threads."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mailcove.core.clock import FakeClock
from mailcove.store.api import DeliveryTarget, ImportMessage
from mailcove.store.rules.textindex import BATCH
from mailcove.store.sqlite import SqliteStore
from mailcove.store.textindexer import LOAD_SHARE, QUIET, REST, TextIndexer

A = "a@hamap.local"
WAITING = 3 * BATCH  # bodies imported before each test: three full batches


class WorkClock(FakeClock):
    """A FakeClock whose reading also moves by the work done (a batch's time), without firing
    timers: what the real clock does while the indexer works in threads."""

    def __init__(self) -> None:
        super().__init__()
        self.worked = 0.0

    def monotonic(self) -> float:
        return super().monotonic() + self.worked


class Indexing:
    """A TextIndexer on `store` and `clock` whose batches are counted and each take `took` on
    the clock."""

    def __init__(self, store: SqliteStore, took: float) -> None:
        self.store = store
        self.clock = WorkClock()
        self.running = 0  # batches in progress
        self.batches: list[tuple[float, int]] = []  # (clock reading at its start, bodies indexed)
        real = store.index_pending

        async def timed(after: int = 0, limit: int = BATCH) -> tuple[int, int]:
            self.running += 1
            try:
                at = self.clock.monotonic()
                n, last = await real(after, limit)
                self.clock.worked += took
                self.batches.append((at, n))
                return n, last
            finally:
                self.running -= 1

        store.index_pending = timed  # type: ignore[method-assign]
        self.indexer = TextIndexer(store, clock=self.clock)

    async def start(self) -> None:
        self.indexer.start()
        await self.settled()

    async def waiting(self) -> int:
        return (await self.store.index_progress())[0]

    async def settled(self) -> None:
        """Wait in real time until the indexer sleeps on the clock (no batch runs, no thread)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + 10
        while self.running or not self.clock.pending():
            assert loop.time() < give_up, "the indexer did not settle"
            await asyncio.sleep(0.005)
        await self.clock.settle()

    async def advance(self, seconds: float, step: float = 0.05) -> None:
        """Let `seconds` pass in steps, each once the indexer has settled."""
        for _ in range(round(seconds / step)):
            await self.settled()
            await self.clock.advance(step)
        await self.settled()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "data", change_poll_ms=20)
    await s.start()
    try:
        await s.create_account(A)
        # Imported, not delivered: bodies waiting for the index without counting as arrivals.
        items = [ImportMessage(f"Subject: {i}\r\n\r\nbody number {i}\r\n".encode()) for i in range(WAITING)]
        await s.import_messages(A, "INBOX", items)
        yield s
    finally:
        await s.close()


async def test_it_rests_while_a_delivery_is_in_flight_and_indexes_at_full_speed_once_idle(
    store: SqliteStore,
) -> None:
    gate = asyncio.Event()
    real_add = store._add_bytes

    async def held(*args: Any) -> Any:
        await gate.wait()
        return await real_add(*args)

    store._add_bytes = held  # type: ignore[method-assign]
    delivery = asyncio.create_task(store.append(A, "INBOX", b"Subject: late\r\n\r\nheld in flight\r\n"))
    await asyncio.sleep(0)
    assert store.arrivals.in_flight == 1
    took = 0.1
    rest = took * (1 / LOAD_SHARE - 1)
    assert rest > REST  # the share, not the floor, sets this rest
    run = Indexing(store, took)
    await run.start()
    try:
        # One batch, then a rest: the indexer's share of the time is LOAD_SHARE.
        assert await run.waiting() == WAITING - BATCH
        await run.advance(rest - 0.1)
        assert await run.waiting() == WAITING - BATCH
        assert len(run.batches) == 1
        await run.advance(0.15)
        assert await run.waiting() == WAITING - 2 * BATCH  # a delivery in flight does not starve it
        assert run.batches[1][0] - run.batches[0][0] == pytest.approx(took + rest)

        # The delivery ends: the next look (QUIET after the last, which has just been) finds the
        # server idle, and the rest (with the body just delivered) is indexed batch after batch.
        gate.set()
        await delivery
        await run.advance(QUIET + 0.05)
        assert await run.waiting() == 0
        assert [n for _, n in run.batches[2:]] == [BATCH, 1]
    finally:
        await run.indexer.stop()


async def test_with_nothing_arriving_it_does_not_rest_between_batches(store: SqliteStore) -> None:
    run = Indexing(store, took=0.1)
    await run.start()
    try:
        assert await run.waiting() == 0  # no time passed but the batches' own
        assert [n for _, n in run.batches] == [BATCH, BATCH, BATCH, 0]
        starts = [at for at, _ in run.batches]
        assert [b - a for a, b in itertools.pairwise(starts)] == pytest.approx([0.1] * 3)
    finally:
        await run.indexer.stop()


async def test_a_steady_stream_slows_it_but_does_not_starve_it(store: SqliteStore) -> None:
    """A message every 0.1 s, delivered or appended, never in flight when the indexer looks:
    every look sees a new one, so each batch is followed by a full rest (REST: these batches
    are quick), and yet all that waited is indexed, one batch per rest."""
    run = Indexing(store, took=0.01)
    arrived = 0

    async def arrive() -> None:
        nonlocal arrived
        arrived += 1
        body = f"Subject: stream {arrived}\r\n\r\narriving\r\n".encode()
        if arrived % 2:
            await store.append(A, "INBOX", body)
        else:
            await store.deliver(body, [DeliveryTarget(A)])

    await arrive()  # before the indexer's first look
    await run.start()
    try:
        for _ in range(60):
            await arrive()
            await run.advance(0.1, step=0.1)
        full = [at for at, n in run.batches if n]
        gaps = [b - a for a, b in itertools.pairwise(full)]
        assert len(full) >= 4, run.batches  # the 300 imported and what streamed in meanwhile
        assert min(gaps) >= REST - 1e-9, gaps  # a rest after every batch while the stream went on
        # Of the 361 bodies, only what arrived since the last batches waits.
        assert await run.waiting() <= (REST + 0.5 + QUIET) / 0.1 + 1
    finally:
        await run.indexer.stop()
