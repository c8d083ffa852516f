"""The background indexer: fills the full-text index (store/rules/textindex.py) after deliveries
were acknowledged, and indexes what an older store holds after an upgrade.

A task of the serving process's store (`text_index=True`, which `open_store` sets for a store
that watches changes, i.e. `mailcove serve`'s). It reads up to a batch of unindexed bodies,
computes their text in a thread (off the event loop and off SQLite's writer thread), and writes
it in one transaction; when a batch comes back short it waits `idle` seconds before looking
again. Nothing on the delivery path waits for it: a delivery only inserts its body unindexed,
and SEARCH finds unindexed bodies by its exact scan. One process at a time indexes (the store
lease `text-index`), so several workers or nodes do not compute the same texts twice.

It gives way to mail arriving (the store's `Arrivals`, counted by Frontend._add): when, after a
batch, a message is being added or one was begun since its previous look, it rests, so that it
takes at most LOAD_SHARE of the time; the rest ends, so a steady stream slows it but never starves
it. A resting indexer looks every QUIET seconds and goes on at once when nothing arrived since its
last look; with nothing arriving (after an upgrade, after a flood) it indexes batch after batch
without resting. Only the arrivals of its own process count: with several worker processes the
lease may fall to one that serves no SMTP, which then does not rest for worker 0's deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
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
# The indexer's share of the time while mail arrives: after a batch it rests (1 / LOAD_SHARE - 1)
# times as long as the batch took. Unbounded, indexing 100 KB bodies (about 2.4 ms of CPU each)
# took the cores from the deliveries themselves: bench/smtp at 100 KB and 50 connections fell
# from 1,143 to 299 messages/s; a 10% share still cost about 9% (1,045/s). A batch that waited on
# a busy writer took longer, so the rest grows with the load. The index lags behind a flood;
# SEARCH scans what is not indexed yet, and the indexer catches up once the flood ends.
LOAD_SHARE = 0.02
# The shortest rest after a batch while mail arrives: small bodies index in milliseconds, and a
# batch every few of them would still make deliveries queue behind its write transaction.
REST = 1.0
# How often a resting indexer looks whether mail still arrives: an idle server gets its index
# filled within this much time of the last arrival, not after the whole rest.
QUIET = 0.25


class TextIndexer:
    def __init__(self, store: Frontend, *, idle: float = 0.5, clock: Clock = SYSTEM_CLOCK) -> None:
        self.store = store
        self.idle = idle
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._task: asyncio.Task[None] | None = None
        self._held_at: float | None = None  # monotonic time the lease was last taken or renewed
        self._begun = store.arrivals.begun  # arrivals begun when the indexer last looked
        self._arrived_at = -math.inf  # monotonic time of the last look that saw one

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

    def _look(self) -> bool:
        """Whether a message is being added now or one was begun since the previous look."""
        arrivals = self.store.arrivals
        seen = arrivals.in_flight > 0 or arrivals.begun != self._begun
        self._begun = arrivals.begun
        if seen:
            self._arrived_at = self.clock.monotonic()
        return seen

    def _arriving(self) -> bool:
        """Whether mail arrives: a look now or less than QUIET seconds ago saw a message arrive
        (a batch that took a few milliseconds between two arrivals does not make the stream stop)."""
        return self._look() or self.clock.monotonic() - self._arrived_at < QUIET

    async def _rest(self, seconds: float) -> None:
        """Rest up to `seconds`, looking every QUIET seconds; stop at the first look that finds
        nothing arrived since the previous one (the server is idle: the rest protects nothing)."""
        until = self.clock.monotonic() + seconds
        while (left := until - self.clock.monotonic()) > 0:
            await self.clock.sleep(min(QUIET, left))
            if not self._look():
                return

    async def _loop(self) -> None:
        after = 0
        while True:
            wait = self.idle
            try:
                if await self._hold():
                    started = self.clock.monotonic()
                    n, last = await self.store.index_pending(after, BATCH)
                    took = self.clock.monotonic() - started
                    if n and self._arriving():
                        await self._rest(max(took * (1 / LOAD_SHARE - 1), REST))
                    if n == BATCH:
                        after = last  # more may be waiting: go on (at once when nothing arrives)
                        continue
                else:
                    wait = LEASE_TTL / 3  # another process indexes: ask again only when its lease may end
                after = 0  # from the start again (a body that failed is retried after `idle`)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("full-text index: indexing failed; retrying")
            await self.clock.sleep(wait)
