"""Running one write: a short transaction on a pooled connection, retried on deadlock.

There is no writer thread: PostgreSQL serialises what must be serialised with row locks and does
its own group commit of concurrent transactions. What a write changed is announced with NOTIFY
in the same transaction, so it is sent exactly when (and only if) the write commits, and every
node listening hears it in commit order (poller.py).

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from mailcove.store.changes import Change

log = logging.getLogger("mailcove.store")

CHANNEL = "mailcove_changes"
# NOTIFY payloads are limited to 8000 bytes; larger change sets go through change_log.
MAX_PAYLOAD = 7900
MAX_TRIES = 6
PRUNE_EVERY_SECONDS = 60.0
KEEP_CHANGES_SECONDS = 600.0
RETRYABLE = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)

RawChange = tuple[str, int, str, list[int], int]  # user, mailbox_id, kind, uids, modseq


@dataclass
class Txn:
    """Per-attempt scratch: what to announce once the transaction commits."""

    disk_low: bool
    changes: list[RawChange] = field(default_factory=list)

    def change(self, user: str, mailbox_id: int, kind: str, uids: list[int] | tuple[int, ...], modseq: int) -> None:
        self.changes.append((user, mailbox_id, kind, list(uids), modseq))


Op = Callable[..., Awaitable[Any]]


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


def merge(changes: list[RawChange]) -> list[list[Any]]:
    """Runs of the same kind on the same mailbox become one change (as the SQLite writer does)."""
    merged: list[list[Any]] = []
    for user, mailbox_id, kind, uids, modseq in changes:
        last = merged[-1] if merged else None
        if last is not None and last[0] == user and last[1] == mailbox_id and last[2] == kind != "mailbox":
            last[3].extend(uids)
            last[4] = max(last[4], modseq)
        else:
            merged.append([user, mailbox_id, kind, list(uids), modseq])
    return merged


class Writer:
    def __init__(self, pool: asyncpg.Pool, data_dir: Path, min_free_bytes: int) -> None:
        self._pool = pool
        self._data_dir = data_dir
        self._min_free = min_free_bytes
        self._last_prune = 0.0
        self.commits = 0
        self.retries = 0

    def _disk_low(self) -> bool:
        # The database's disk is not ours to see; the floor guards this node's spool directory,
        # where every incoming message is written before it reaches the database.
        if self._min_free <= 0:
            return False
        st = os.statvfs(self._data_dir)
        return st.f_bavail * st.f_frsize < self._min_free

    async def run(self, op: Op, *args: Any) -> tuple[Any, list[Change]]:
        """Run `op(conn, txn, *args)` in one transaction; returns its result and the changes it
        announced (already committed)."""
        disk_low = self._disk_low()
        for attempt in range(1, MAX_TRIES + 1):
            txn = Txn(disk_low=disk_low)
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    result = await op(conn, txn, *args)
                    published = await self._announce(conn, txn.changes)
            except RETRYABLE as exc:
                if attempt == MAX_TRIES:
                    raise
                self.retries += 1
                log.debug("store transaction retried after %s", type(exc).__name__)
                await asyncio.sleep(random.uniform(0, 0.002 * attempt))
                continue
            self.commits += 1
            await self._maybe_prune()
            return result, published
        raise AssertionError("unreachable")

    async def run_statement(self, fn: Op, *args: Any) -> tuple[Any, list[Change]]:
        """Run `fn(conn, *args)`, one statement in its own (implicit) transaction that announces
        its changes itself and returns (result, changes)."""
        if self._disk_low():
            from mailcove.core.errors import DiskFull

            raise DiskFull("free disk space is below the configured floor")
        for attempt in range(1, MAX_TRIES + 1):
            try:
                async with self._pool.acquire() as conn:
                    result, published = await fn(conn, *args)
            except RETRYABLE:
                if attempt == MAX_TRIES:
                    raise
                self.retries += 1
                await asyncio.sleep(random.uniform(0, 0.002 * attempt))
                continue
            self.commits += 1
            return result, published
        raise AssertionError("unreachable")

    async def _announce(self, conn: asyncpg.Connection, raw: list[RawChange]) -> list[Change]:
        if not raw:
            return []
        merged = merge(raw)
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
