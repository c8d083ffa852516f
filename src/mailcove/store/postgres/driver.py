"""PostgreSQL's driver: rules (store/rules/) on a pool of asyncpg connections, on the event loop.

A write rule runs in one short transaction on a pooled connection, retried from the start (a new
rule generator) on deadlock; a read rule runs on a pooled connection outside any explicit
transaction. Deliveries, the hot path, go in batches of one statement each (DeliveryBatcher).

There is no writer thread: PostgreSQL serialises what must be serialised with row locks and does
its own group commit of concurrent transactions. What a write changed is announced with NOTIFY
in the same transaction, so it is sent exactly when (and only if) the write commits, and every
node listening hears it in commit order (watch.py).

Lock order, kept by every operation so that two transactions never wait on each other in a
circle: account rows first, then mailbox rows (ascending id), then blob rows. A deadlock the
order cannot rule out (several blob rows updated by one statement) is detected by PostgreSQL,
which aborts one transaction; it is retried here, from the start, a few times."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from mailcove.store.changes import Change, RawChange, merge_changes
from mailcove.store.postgres.flags import FlagCache
from mailcove.store.sansio import Handlers, Rule, run_async

log = logging.getLogger("mailcove.store")
T = TypeVar("T")

CHANNEL = "mailcove_changes"
# NOTIFY payloads are limited to 8000 bytes; larger change sets go through change_log.
MAX_PAYLOAD = 7900
MAX_TRIES = 6
PRUNE_EVERY_SECONDS = 60.0
KEEP_CHANGES_SECONDS = 600.0
RETRYABLE = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)


class Context:
    """What a statement sees besides the connection: the flag-text cache, and the size up to
    which a body is stored inline (larger ones as chunk rows)."""

    __slots__ = ("flags", "inline_max")

    def __init__(self, flags: FlagCache, inline_max: int) -> None:
        self.flags = flags
        self.inline_max = inline_max


class Txn(Context):
    """One attempt of a write: what to announce once the transaction commits."""

    __slots__ = ("changes", "disk_low")

    def __init__(self, flags: FlagCache, inline_max: int, disk_low: bool) -> None:
        self.flags = flags
        self.inline_max = inline_max
        self.disk_low = disk_low
        self.changes: list[RawChange] = []

    def change(self, user: str, mailbox_id: int, kind: str, uids: Sequence[int], modseq: int) -> None:
        self.changes.append((user, mailbox_id, kind, list(uids), modseq))


Handler = Callable[[asyncpg.Connection, Any, Any], Awaitable[Any]]


def executor(conn: asyncpg.Connection, cx: Context, handlers: Handlers[Handler]) -> Callable[[Any], Awaitable[Any]]:
    """Runs one statement of a rule on `conn`."""
    return lambda s: handlers[type(s)](conn, cx, s)



def encode_uids(uids: list[int]) -> str:
    """Ranges, so a 10,000-message expunge of consecutive UIDs stays a short payload."""
    out: list[str] = []
    run_start = prev = None
    for u in sorted(uids):
        if prev is not None and u == prev + 1:
            prev = u
            continue
        if run_start is not None:
            out.append(str(run_start) if run_start == prev else f"{run_start}:{prev}")
        run_start = prev = u
    if run_start is not None:
        out.append(str(run_start) if run_start == prev else f"{run_start}:{prev}")
    return ",".join(out)


def decode_uids(text: str) -> tuple[int, ...]:
    out: list[int] = []
    for part in text.split(","):
        if not part:
            continue
        lo, _, hi = part.partition(":")
        if hi:
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.append(int(lo))
    return tuple(out)


def encode_changes(changes: list[Change]) -> str:
    return json.dumps(
        [[c.id, c.user, c.mailbox_id, c.kind, c.modseq, encode_uids(list(c.uids))] for c in changes],
        separators=(",", ":"),
    )


def decode_changes(payload: str) -> list[Change]:
    return [
        Change(i, user, mb, kind, decode_uids(uids), modseq) for i, user, mb, kind, modseq, uids in json.loads(payload)
    ]


class Driver:
    def __init__(
        self,
        pool: asyncpg.Pool,
        data_dir: Path,
        min_free_bytes: int,
        handlers: Handlers[Handler],
        flags: FlagCache,
        inline_max: int,
    ) -> None:
        self._pool = pool
        self._handlers = handlers
        self._flags = flags
        self._inline_max = inline_max
        self._context = Context(flags, inline_max)
        self._data_dir = data_dir
        self._min_free = min_free_bytes
        self._last_prune = 0.0

    def _disk_low(self) -> bool:
        # The database's disk is not ours to see; the floor guards this node's spool directory,
        # where every incoming message is written before it reaches the database.
        if self._min_free <= 0:
            return False
        st = os.statvfs(self._data_dir)
        return st.f_bavail * st.f_frsize < self._min_free

    async def run(self, rule: Callable[..., Rule[T]], *args: Any) -> tuple[T, list[Change]]:
        """Run the rule `rule(*args)` in one transaction, from the start again (a new rule
        generator) after a deadlock; returns its result and the changes it announced (already
        committed)."""
        disk_low = self._disk_low()
        for attempt in range(1, MAX_TRIES + 1):
            txn = Txn(self._flags, self._inline_max, disk_low)
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    result = await run_async(rule(*args), executor(conn, txn, self._handlers))
                    published = await self._announce(conn, txn.changes)
            except RETRYABLE as exc:
                if attempt == MAX_TRIES:
                    raise
                log.debug("store transaction retried after %s", type(exc).__name__)
                await asyncio.sleep(random.uniform(0, 0.002 * attempt))
                continue
            await self._maybe_prune()
            return result, published
        raise AssertionError("unreachable")

    async def read(self, rule: Callable[..., Rule[T]], *args: Any) -> T:
        """Run a reading rule on a pooled connection, outside any explicit transaction."""
        async with self._pool.acquire() as conn:
            return await run_async(rule(*args), executor(conn, self._context, self._handlers))

    async def _announce(self, conn: asyncpg.Connection, raw: list[RawChange]) -> list[Change]:
        if not raw:
            return []
        merged = merge_changes(raw)
        ids = await conn.fetchval(
            "SELECT array_agg(nextval('change_ids')) FROM generate_series(1, $1::int)", len(merged)
        )
        changes = [Change(i, m[0], m[1], m[2], tuple(m[3]), m[4]) for i, m in zip(ids, merged, strict=True)]
        payload = encode_changes(changes)
        if len(payload.encode()) > MAX_PAYLOAD:
            # The row and the NOTIFY naming it commit together; listeners read it afterwards.
            await conn.execute(
                "INSERT INTO change_log (id, ts, payload) VALUES ($1, $2, $3)", changes[0].id, time.time(), payload
            )
            payload = f"@{changes[0].id}"
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
        return changes

    async def _maybe_prune(self) -> None:
        now = time.time()
        if now - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = now
        try:
            await self._pool.execute("DELETE FROM change_log WHERE ts < $1", now - KEEP_CHANGES_SECONDS)
        except Exception:
            log.exception("pruning change_log failed")


class DeliveryBatcher:
    """Group commit for deliveries, as the SQLite writer does it: deliveries that arrive while a
    batch is in the database wait, then go together in one statement and one commit
    (statements.deliver_batch). Deliveries to one busy mailbox would otherwise commit one by one,
    each holding the mailbox's row lock through its own WAL flush, and every commit that
    NOTIFYs is serialised by PostgreSQL anyway. A lone delivery is a batch of one: no waiting.

    RUNNERS batches may be in flight at once (one executing while another's commit flushes);
    they lock their rows in the global order, so they cannot deadlock with each other or with
    other nodes' batches."""

    RUNNERS = 2
    # Measured (10,000 1 KB deliveries to one mailbox, 2,000 at a time, this 2-core machine):
    # batch 1: 652/s, 4: 1,012/s, 8: 1,242/s, 16: 1,146/s, 32: 928/s, 60: 730/s, 256: 219/s.
    # Larger batches hold the mailbox's row lock longer while the other runner waits, and past
    # 64 subtransactions PostgreSQL's per-backend subxid cache overflows, which makes every other
    # backend's visibility checks consult pg_subtrans.
    MAX_BATCH = 8

    def __init__(self, pool: asyncpg.Pool, run: Callable[..., Awaitable[list[Any]]]) -> None:
        self._pool = pool
        self._run = run
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[Any], int]] = []
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight = 0
        self.batches = 0

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._runner(), name=f"mailcove-pg-deliver-{i}") for i in range(self.RUNNERS)
        ]

    async def close(self, timeout: float = 30.0) -> None:
        """Finish what is queued (as the SQLite writer does at stop), then end the runners."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (self._queue or self._inflight) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks = []
        for _args, fut, _n in self._queue:
            if not fut.done():
                fut.set_exception(RuntimeError("store closed"))
        self._queue.clear()

    async def submit(self, args: tuple[Any, ...]) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((args, fut, 1))
        self._wakeup.set()
        return await fut

    async def _runner(self) -> None:
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch, self._queue = self._queue[: self.MAX_BATCH], self._queue[self.MAX_BATCH :]
            if self._queue:
                self._wakeup.set()
            self._inflight += 1
            try:
                async with self._pool.acquire() as conn:
                    outcomes = await self._run(conn, [b[0] for b in batch])
            except asyncio.CancelledError:
                for _a, fut, _n in batch:
                    if not fut.done():
                        fut.set_exception(RuntimeError("store closed"))
                raise
            except BaseException as exc:  # the statement itself failed: every delivery in it did
                outcomes = [exc] * len(batch)
            finally:
                self._inflight -= 1
            self.batches += 1
            for (args, fut, tries), outcome in zip(batch, outcomes, strict=True):
                if fut.done():
                    continue
                if isinstance(outcome, RETRYABLE) and tries < MAX_TRIES:
                    # Retried alone in a later batch; its subtransaction left nothing behind.
                    self._queue.append((args, fut, tries + 1))
                    self._wakeup.set()
                elif isinstance(outcome, BaseException):
                    fut.set_exception(outcome)
                else:
                    fut.set_result(outcome)
