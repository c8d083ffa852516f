"""The change bus fed by LISTEN/NOTIFY: every node hears every commit, its own included.

One dedicated connection LISTENs on the channel. PostgreSQL delivers the notifications of
different transactions in commit order, so for each mailbox this node publishes changes in the
order their UIDs and MODSEQs were allocated (the mailbox row lock orders those commits). Own
changes take the same road rather than being published at commit: publishing them early could
put them ahead of an earlier commit from another node that is still on its way.

A write waits (`wait_published`) until the listener has published its changes, so when a write
returns, the bus has already carried everything committed before it, as with the SQLite store.

If the listening connection drops, notifications sent meanwhile are lost: on reconnecting,
every subscriber is marked overflowed, which makes it resynchronise from the store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

import asyncpg

from mailcove.store.changes import Change, ChangeBus
from mailcove.store.postgres.driver import CHANNEL, decode_changes

log = logging.getLogger("mailcove.store")

HEALTH_CHECK_SECONDS = 10.0
_RECENT_KEEP = 20_000


class ChangeListener:
    def __init__(self, dsn: str, bus: ChangeBus, pool: asyncpg.Pool) -> None:
        self._dsn = dsn
        self._bus = bus
        self._pool = pool
        self._conn: asyncpg.Connection | None = None
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._lost = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._waiters: dict[int, asyncio.Future[bool]] = {}
        self._recent: set[int] = set()
        self._recent_order: deque[int] = deque()
        self._closing = False

    async def start(self) -> None:
        await self._connect()
        self._tasks = [
            asyncio.create_task(self._consume(), name="mailcove-pg-changes"),
            asyncio.create_task(self._supervise(), name="mailcove-pg-listen"),
        ]

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        self._lost.clear()
        conn.add_termination_listener(lambda _c: self._lost.set())
        await conn.add_listener(CHANNEL, self._on_notify)
        self._conn = conn

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._queue.put_nowait(payload)

    async def _supervise(self) -> None:
        """Notice a dead listening connection (closed, or silently gone) and replace it."""
        backoff = 0.1
        while not self._closing:
            try:
                await asyncio.wait_for(self._lost.wait(), HEALTH_CHECK_SECONDS)
            except TimeoutError:
                try:
                    assert self._conn is not None
                    await asyncio.wait_for(self._conn.execute("SELECT 1"), HEALTH_CHECK_SECONDS)
                    continue
                except Exception:
                    pass
            if self._closing:
                return
            log.warning("change listener connection lost; reconnecting")
            if self._conn is not None:
                self._conn.terminate()
            while not self._closing:
                try:
                    await self._connect()
                    break
                except Exception as exc:
                    log.warning("change listener reconnect failed: %s", exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
            backoff = 0.1
            # Whatever was committed while we were away was not heard: resynchronise.
            self._bus.resync_all()
            for fut in self._waiters.values():
                if not fut.done():
                    fut.set_result(False)

    async def _consume(self) -> None:
        """Publish in arrival (= commit) order, including payloads that name a change_log row."""
        while True:
            payload = await self._queue.get()
            if payload is None:
                return
            try:
                if payload.startswith("@"):
                    text = await self._pool.fetchval("SELECT payload FROM change_log WHERE id = $1", int(payload[1:]))
                    if text is None:
                        self._bus.resync_all()  # pruned before we read it: we cannot know what changed
                        continue
                    payload = text
                changes = decode_changes(payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("bad change notification %r", payload[:200])
                continue
            self._bus.publish(changes)
            self._remember(changes)

    def _remember(self, changes: list[Change]) -> None:
        for c in changes:
            self._recent.add(c.id)
            self._recent_order.append(c.id)
            fut = self._waiters.pop(c.id, None)
            if fut is not None and not fut.done():
                fut.set_result(True)
        while len(self._recent_order) > _RECENT_KEEP:
            self._recent.discard(self._recent_order.popleft())

    async def wait_published(self, changes: list[Change], timeout: float = 2.0) -> bool:
        """Wait until the listener published `changes` (the last of them: commit order means the
        rest came first). False if it did not within `timeout`: the caller publishes them itself."""
        last = changes[-1].id
        if last in self._recent:
            return True
        fut = self._waiters.get(last)
        if fut is None:
            fut = self._waiters[last] = asyncio.get_running_loop().create_future()
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            self._waiters.pop(last, None)
            return False

    async def close(self) -> None:
        self._closing = True
        self._lost.set()
        self._queue.put_nowait(None)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.close(), 5.0)
            self._conn = None
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_result(False)
