"""The background indexer: fills the full-text index (store/rules/textindex.py) after deliveries
were acknowledged, and indexes what an older store holds after an upgrade.

A task of the serving process's store (`text_index=True`, which `open_store` sets for a store
that watches changes, i.e. `mailcove serve`'s). It reads up to a batch of unindexed bodies,
computes their text in a thread (off the event loop and off SQLite's writer thread), and writes
it in one transaction; when a batch comes back short it waits `idle` seconds before looking
again. Nothing on the delivery path waits for it: a delivery only inserts its body unindexed,
and SEARCH finds unindexed bodies by its exact scan. One process at a time indexes (the store
lease `text-index`), so several workers or nodes do not compute the same texts twice.

It gives way to mail arriving (the store's `Arrivals`, counted by Frontend._add). Its batches
are kept short (BATCH_TIME: fewer bodies when they are large), so a delivery that comes while one
runs waits little. While mail arrives (a message being added, or one seen in the last IDLE_AFTER
seconds) it rests after each batch, for at least REST and so that it takes at most LOAD_SHARE of
the time; every rest ends, so a steady stream slows it but never starves it. With nothing
arriving for IDLE_AFTER seconds (after an upgrade, after a flood) it indexes batch after batch
without resting; a resting indexer looks every LOOK seconds whether that time has come. Other
processes' and nodes' deliveries count once the change bus hears them (SQLite polls for them every
`change_poll_ms`): with several workers the lease may fall to one that serves no SMTP.
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
# from 1,143 to 299 messages/s. At a 10% share bench/smtp could no longer tell it from a server
# without any indexer (docs/benchmarks.md, "Issue 15 part 6"); 5% leaves more to the deliveries
# under a long flood. A batch that waited on a busy writer took longer, so the rest grows with the
# load. The index lags behind a flood; SEARCH scans what is not indexed yet, and the indexer
# catches up once the flood ends.
LOAD_SHARE = 0.05
# The shortest rest after a batch while mail arrives: small bodies index in milliseconds, and a
# batch every few of them would still make deliveries queue behind its write transaction.
REST = 1.0
# How long a batch should take: the indexer sizes the next batch from the last full one. 100
# bodies of 100 KB took about half a second, and a flood that began meanwhile waited for it (its
# thread holds the GIL for most of that, then its write holds SQLite's writer). The first batch
# is FIRST_BATCH bodies, then the size follows the bodies' cost, up to BATCH: 500 small bodies
# per transaction cost FTS5 about a quarter less CPU each than 100 (fewer, larger segments).
BATCH_TIME = 0.05
FIRST_BATCH = 50
# Mail is still arriving until none came for this long: a pause of a few seconds between bursts
# is not idleness, and indexing at full speed takes a whole core from whatever else runs on the
# machine (in bench/smtp, the peer measured in turns with mailcove: with a 0.25 s pause as the
# threshold, at e00f2f0, tuned Postfix lost about a fifth at 100 KB, and mailcove itself lost 9%
# there to full 100-body batches begun just before its turn). The lag this adds is covered by
# SEARCH's exact scan.
IDLE_AFTER = 10.0
# How often a resting indexer looks whether mail still arrives.
LOOK = 0.25


class TextIndexer:
    def __init__(self, store: Frontend, *, idle: float = 0.5, clock: Clock = SYSTEM_CLOCK) -> None:
        self.store = store
        self.idle = idle
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._task: asyncio.Task[None] | None = None
        self._held_at: float | None = None  # monotonic time the lease was last taken or renewed
        self._counts = (store.arrivals.begun, store.arrivals.heard)  # as the indexer last looked
        self._arrived_at = -math.inf  # monotonic time of the last look that saw one
        self._limit = FIRST_BATCH  # bodies per batch: as many as take BATCH_TIME, at most BATCH

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
        """Whether a message is being added now, or since the previous look one was begun here
        or the change bus heard one (another worker's, or another node's)."""
        arrivals = self.store.arrivals
        seen = arrivals.in_flight > 0 or (arrivals.begun, arrivals.heard) != self._counts
        self._counts = (arrivals.begun, arrivals.heard)
        if seen:
            self._arrived_at = self.clock.monotonic()
        return seen

    def _arriving(self) -> bool:
        """Whether mail arrives: a look now or less than IDLE_AFTER seconds ago saw a message."""
        return self._look() or self.clock.monotonic() - self._arrived_at < IDLE_AFTER

    async def _rest(self, seconds: float) -> None:
        """Rest up to `seconds`, looking every LOOK seconds; stop early once no message arrived
        for IDLE_AFTER seconds (the rest protects nothing then)."""
        until = self.clock.monotonic() + seconds
        while (left := until - self.clock.monotonic()) > 0:
            await self.clock.sleep(min(LOOK, left))
            if not self._arriving():
                return

    async def _loop(self) -> None:
        after = 0
        while True:
            wait = self.idle
            try:
                if await self._hold():
                    limit = self._limit
                    started = self.clock.monotonic()
                    n, last = await self.store.index_pending(after, limit)
                    took = self.clock.monotonic() - started
                    if n == limit and took > 0:
                        # Sized from full batches only: a short one's time is mostly its fixed cost.
                        self._limit = max(1, min(BATCH, int(limit * BATCH_TIME / took)))
                    if n and self._arriving():
                        await self._rest(max(took * (1 / LOAD_SHARE - 1), REST))
                    if n == limit:
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
