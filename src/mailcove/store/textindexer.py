"""The background indexer: fills the full-text index (store/rules/textindex.py) after deliveries
were acknowledged, and indexes what an older store holds after an upgrade.

A task of the serving process's store (`text_index=True`, which `open_store` sets for a store
that watches changes, i.e. `mailcove serve`'s). It reads up to a batch of unindexed bodies,
computes their text in a thread (off the event loop and off SQLite's writer thread), and writes
it in one transaction; when a batch comes back short it waits `idle` seconds before looking
again. Nothing on the delivery path waits for it: a delivery only inserts its body unindexed,
and SEARCH finds unindexed bodies by its exact scan. One process at a time indexes (the store
lease `text-index`), so several workers or nodes do not compute the same texts twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from typing import TYPE_CHECKING

from mailcove.core.clock import SYSTEM_CLOCK, Clock
from mailcove.store.rules.textindex import BATCH

if TYPE_CHECKING:
    from mailcove.store.frontend import Frontend

log = logging.getLogger("mailcove.store")

LEASE = "text-index"
LEASE_TTL = 60.0
# The indexer's share of the server's time while bodies keep arriving: after each batch it rests
# (1 / SHARE - 1) times as long as the batch took. Unbounded, indexing 100 KB bodies (about
# 2.4 ms of CPU each) took the cores from the deliveries themselves: bench/smtp at 100 KB and 50
# connections fell from 1,143 to 299 messages/s. A batch that waited on a busy writer took longer,
# so the rest grows with the load. Under load the index lags; SEARCH scans what is not indexed yet.
SHARE = 0.1


class TextIndexer:
    def __init__(self, store: Frontend, *, idle: float = 0.5, clock: Clock = SYSTEM_CLOCK) -> None:
        self.store = store
        self.idle = idle
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._task: asyncio.Task[None] | None = None
        self._held_at: float | None = None  # monotonic time the lease was last taken or renewed

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="mailcove-text-index")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._held_at is not None:
            self._held_at = None
            with contextlib.suppress(Exception):
                await self.store.release_lease(LEASE, self.owner)

    async def _hold(self) -> bool:
        """Whether this process is the one indexing (the lease, renewed every third of its time)."""
        now = self.clock.monotonic()
        if self._held_at is not None and now - self._held_at < LEASE_TTL / 3:
            return True
        if await self.store.acquire_lease(LEASE, self.owner, LEASE_TTL):
            self._held_at = now
            return True
        self._held_at = None
        return False

    async def _loop(self) -> None:
        after = 0
        while True:
            wait = self.idle
            try:
                if await self._hold():
                    started = self.clock.monotonic()
                    n, last = await self.store.index_pending(after, BATCH)
                    rest = (self.clock.monotonic() - started) * (1 / SHARE - 1)
                    if n == BATCH:
                        after = last  # more may be waiting: go on after the rest
                        await self.clock.sleep(rest)
                        continue
                    wait = max(wait, rest)
                else:
                    wait = LEASE_TTL / 3  # another process indexes: ask again only when its lease may end
                after = 0  # from the start again (a body that failed is retried after `idle`)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("full-text index: indexing failed; retrying")
            await self.clock.sleep(wait)
