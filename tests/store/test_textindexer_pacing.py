"""The background indexer gives way to mail arriving (store/textindexer.py): while a message is
being added in its process, or one came in the last IDLE_AFTER seconds, it rests after each batch
(at least REST, LOAD_SHARE of the time at most), yet every rest ends, so a steady stream never
starves it; with nothing arriving for IDLE_AFTER it indexes batch after batch without resting;
and it keeps its batches to about BATCH_TIME.

Time is a FakeClock. A batch costs no fake time by itself, so the store's `index_pending` is
wrapped to make each body "take" some time (the clock's reading moves by that much) and to let
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
from mailcove.store.textindexer import BATCH_TIME, FIRST_BATCH, IDLE_AFTER, LOAD_SHARE, LOOK, REST, TextIndexer

A = "a@hamap.local"
WAITING = 6 * BATCH  # bodies imported before each test: more than a stream's rests get through


class WorkClock(FakeClock):
    """A FakeClock whose reading also moves by the work done (a batch's time), without firing
    timers: what the real clock does while the indexer works in threads."""

    def __init__(self) -> None:
        super().__init__()
        self.worked = 0.0

    def monotonic(self) -> float:
        return super().monotonic() + self.worked

    def passed(self) -> float:
        """The fake time, without the work."""
        return super().monotonic()


class Indexing:
    """A TextIndexer on `store` whose batches are counted and take `per_body` seconds a body on
    its clock."""

    def __init__(self, store: SqliteStore, per_body: float) -> None:
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
                self.clock.worked += per_body * n
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
        """Let `seconds` pass in steps of at most `step`, each ending at the indexer's next timer
        if that comes first, and each once the indexer has settled: a batch the indexer starts
        then sees the clock stand still but for its own work, as with the system clock."""
        end = self.clock.passed() + seconds
        while (left := end - self.clock.passed()) > 1e-9:
            await self.settled()
            await self.clock.advance(min(step, left, *self.clock.pending()))
        await self.settled()


async def _heard(store: SqliteStore, count: int) -> None:
    """Wait in real time until the store's change bus has heard `count` publications of new
    messages (its own commits reach it from the writer thread, others' from the poller)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 10
    while store.arrivals.heard < count:
        assert loop.time() < give_up, "the change bus heard nothing"
        await asyncio.sleep(0.005)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "data", change_poll_ms=20)
    await s.start()
    try:
        await s.create_account(A)
        # Imported, not delivered: bodies waiting for the index without counting as arrivals.
        items = [ImportMessage(f"Subject: {i}\r\n\r\nbody number {i}\r\n".encode()) for i in range(WAITING)]
        await s.import_messages(A, "INBOX", items)
        await _heard(s, 1)  # the import's new messages: heard before any indexer starts
        yield s
    finally:
        await s.close()


def _delivery_held_in_flight(store: SqliteStore) -> tuple[asyncio.Event, asyncio.Task[Any]]:
    """An APPEND that stays in flight (its body not yet stored) until the event is set."""
    gate = asyncio.Event()
    real_add = store._add_bytes

    async def held(*args: Any) -> Any:
        await gate.wait()
        return await real_add(*args)

    store._add_bytes = held  # type: ignore[method-assign]
    return gate, asyncio.create_task(store.append(A, "INBOX", b"Subject: late\r\n\r\nheld in flight\r\n"))


async def test_it_rests_while_a_delivery_is_in_flight_and_indexes_at_full_speed_once_idle(
    store: SqliteStore,
) -> None:
    gate, delivery = _delivery_held_in_flight(store)
    await asyncio.sleep(0)
    assert store.arrivals.in_flight == 1
    # A body takes 2.3 ms (as 100 KB bodies do): the rest after the first batch is set by the
    # share, and the next batches are cut to int(BATCH_TIME / 0.0023) = 21 bodies, 0.048 s each.
    per_body = 0.0023
    run = Indexing(store, per_body)
    await run.start()
    try:
        rest = FIRST_BATCH * per_body * (1 / LOAD_SHARE - 1)
        assert rest > REST
        assert await run.waiting() == WAITING - FIRST_BATCH
        await run.advance(rest - 0.1)
        assert await run.waiting() == WAITING - FIRST_BATCH
        assert len(run.batches) == 1
        await run.advance(0.15)
        assert await run.waiting() == WAITING - FIRST_BATCH - 21  # a delivery in flight does not starve it
        assert run.batches[1][0] - run.batches[0][0] == pytest.approx(FIRST_BATCH * per_body + rest)

        # The delivery ends. Until no message came for IDLE_AFTER the indexer keeps resting
        # (REST after these short batches); then, at its next look, it indexes what is left,
        # the body just delivered too, batch after batch.
        gate.set()
        await delivery
        await run.advance(IDLE_AFTER - 2 * LOOK)
        starts = [at for at, _ in run.batches]
        assert len(starts) > 2
        assert min(b - a for a, b in itertools.pairwise(starts)) >= REST
        assert await run.waiting() > 0
        before = len(run.batches)
        await run.advance(4 * LOOK)  # the bus hears the delivery's commit at the first look after it
        assert await run.waiting() == 0
        quick = [b for b in run.batches[before - 1 :] if b[1]]  # not the idle polls after
        assert len(quick) > 3
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(quick)]
        assert gaps[1:] == pytest.approx([21 * per_body] * (len(gaps) - 1)), run.batches  # no rest between them
    finally:
        await run.indexer.stop()


async def test_with_nothing_arriving_it_does_not_rest_between_batches(store: SqliteStore) -> None:
    """Small bodies: after the first batch, each is BATCH bodies (they take under BATCH_TIME),
    and each begins when the one before ended."""
    per_body = 0.04 / BATCH
    run = Indexing(store, per_body)
    await run.start()
    try:
        assert await run.waiting() == 0  # no time passed but the batches' own
        sizes = [n for _, n in run.batches]
        full, left = divmod(WAITING - FIRST_BATCH, BATCH)
        # A short batch ends the run; a full last one is followed by one that finds nothing.
        assert sizes == [FIRST_BATCH] + [BATCH] * full + ([left] if left else [0])
        starts = [at for at, _ in run.batches]
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert gaps == pytest.approx([n * per_body for n in sizes[:-1]])
    finally:
        await run.indexer.stop()


async def test_batches_of_large_bodies_are_kept_short(store: SqliteStore) -> None:
    """Bodies of 10.5 ms: after the first batch, int(BATCH_TIME / 0.0105) = 4 bodies a batch."""
    run = Indexing(store, per_body=0.0105)
    await run.start()
    try:
        assert await run.waiting() == 0
        sizes = [n for _, n in run.batches]
        assert sizes[0] == FIRST_BATCH
        assert set(sizes[1:-2]) == {int(BATCH_TIME / 0.0105)}, sizes
        assert sum(sizes) == WAITING
    finally:
        await run.indexer.stop()


async def test_a_steady_stream_slows_it_but_does_not_starve_it(store: SqliteStore) -> None:
    """A message every 0.5 s, delivered or appended, never in flight when the indexer looks:
    after each batch it rests (REST: these batches are quick), and yet all that waited is
    indexed, one batch per rest."""
    run = Indexing(store, per_body=0.01 / BATCH)
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
        for _ in range(24):
            await arrive()
            await run.advance(0.5, step=0.25)
        full = [at for at, n in run.batches if n]
        gaps = [b - a for a, b in itertools.pairwise(full)]
        assert len(full) >= WAITING // BATCH + 1, run.batches  # the imported, what streamed in meanwhile
        assert min(gaps) >= REST - 1e-9, gaps  # a rest after every batch while the stream went on
        # Of the bodies imported and streamed, only what arrived since the last batches waits.
        assert await run.waiting() <= (REST + run.indexer.idle + 2 * LOOK) / 0.5 + 1
    finally:
        await run.indexer.stop()


async def test_a_long_rest_ends_once_mail_stopped_for_idle_after(store: SqliteStore) -> None:
    """A batch of 1 s while a delivery is in flight earns a rest of 1 s x (1 / LOAD_SHARE - 1),
    longer than IDLE_AFTER: when the delivery ends, the indexer goes on after IDLE_AFTER (and a
    look), not at the end of that rest."""
    gate, delivery = _delivery_held_in_flight(store)
    await asyncio.sleep(0)
    run = Indexing(store, per_body=1.0 / BATCH)
    await run.start()
    try:
        assert 1 / LOAD_SHARE - 1 > IDLE_AFTER + 3 * LOOK
        assert len(run.batches) == 1
        gate.set()
        await delivery
        await run.advance(IDLE_AFTER + 3 * LOOK)
        assert len(run.batches) > 1
    finally:
        await run.indexer.stop()


async def test_another_process_s_deliveries_make_it_rest_too(store: SqliteStore, tmp_path: Path) -> None:
    """Two worker processes on one store: the one that indexes (`store`) is not the one that
    receives the mail (`other`, a second SqliteStore on the same files). It hears the other's
    deliveries on its change bus (the poller) and rests as for its own."""
    other = SqliteStore(tmp_path / "data", change_poll_ms=20)
    await other.start()
    try:
        run = Indexing(store, per_body=0.01 / BATCH)
        await other.deliver(b"Subject: elsewhere\r\n\r\nanother worker's\r\n", [DeliveryTarget(A)])
        await _heard(store, 2)
        assert store.arrivals.begun == 0
        await run.start()
        try:
            assert [n for _, n in run.batches] == [FIRST_BATCH]  # then a rest, not the next batch
            await run.advance(REST + LOOK)
            assert [n for _, n in run.batches] == [FIRST_BATCH, BATCH]
        finally:
            await run.indexer.stop()
    finally:
        await other.close()
