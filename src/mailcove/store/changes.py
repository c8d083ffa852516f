"""The change bus: new messages, flag changes, expunges and mailbox changes, fanned out to the
sessions of the same user in this process (IMAP IDLE, POP3, a second SELECT).

Backends feed it from two directions: their own commits (at once) and commits made by other
processes (the admin CLI, `mailcove sendmail`, another node), which each backend detects in its
own way. A change may arrive through both; `publish` drops repeats by change id.

A subscriber that falls far behind is not allowed to grow memory without bound: past
`MAX_PENDING` it is marked `overflowed` and should resynchronise from the store instead.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

ChangeKind = Literal["append", "flags", "expunge", "mailbox"]
MAX_PENDING = 10_000
# What a write announces before its change gets an id: user, mailbox_id, kind, uids, modseq.
RawChange = tuple[str, int, str, list[int], int]


@dataclass(frozen=True, slots=True)
class Change:
    id: int
    user: str
    mailbox_id: int
    kind: ChangeKind
    uids: tuple[int, ...]
    modseq: int


def merge_changes(changes: list[RawChange]) -> list[list[Any]]:
    """A commit's changes as the change log keeps them: runs of the same kind on the same mailbox
    become one change (fifty deliveries to one INBOX, one row), [user, mailbox_id, kind, uids,
    modseq] each. Mailbox changes are never merged: each names one event."""
    merged: list[list[Any]] = []
    for user, mailbox_id, kind, uids, modseq in changes:
        last = merged[-1] if merged else None
        if last is not None and last[0] == user and last[1] == mailbox_id and last[2] == kind != "mailbox":
            last[3].extend(uids)
            last[4] = max(last[4], modseq)
        else:
            merged.append([user, mailbox_id, kind, list(uids), modseq])
    return merged


class Subscription:
    def __init__(self, bus: ChangeBus, user: str) -> None:
        self._bus = bus
        self.user = user
        self._pending: list[Change] = []
        self._event = asyncio.Event()
        self.overflowed = False

    def _push(self, change: Change) -> None:
        if len(self._pending) >= MAX_PENDING:
            self.overflowed = True
            self._pending.clear()
        else:
            self._pending.append(change)
        self._event.set()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until something is pending; False on timeout."""
        if self._pending or self.overflowed:
            return True
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    @property
    def pending(self) -> bool:
        return bool(self._pending) or self.overflowed

    def drain(self) -> list[Change]:
        out, self._pending = self._pending, []
        self._event.clear()
        return out

    def close(self) -> None:
        self._bus._unsubscribe(self)


class ChangeBus:
    """In-process fan-out. Must be used from the event loop thread; backends running in worker
    threads hand changes over with loop.call_soon_threadsafe(bus.publish, changes)."""

    _SEEN_KEEP = 50_000

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._seen: set[int] = set()
        self._floor = 0  # every id <= floor has been published

    def subscribe(self, user: str) -> Subscription:
        sub = Subscription(self, user)
        self._subs[user].add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.user)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.user]

    def publish(self, changes: list[Change]) -> None:
        for change in changes:
            if change.id <= self._floor or change.id in self._seen:
                continue
            self._seen.add(change.id)
            for sub in tuple(self._subs.get(change.user, ())):
                sub._push(change)
        if len(self._seen) > self._SEEN_KEEP:
            # Ids come from one increasing sequence and arrive within moments of each other, so
            # everything far below the newest id has been seen; forget it.
            newest = max(self._seen)
            self._floor = newest - self._SEEN_KEEP // 2
            self._seen = {i for i in self._seen if i > self._floor}

    def resync_all(self) -> None:
        """Tell every subscriber it may have missed changes (a backend lost its source of them,
        e.g. a dropped LISTEN connection): each reloads what it holds, as after an overflow."""
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.overflowed = True
                sub._event.set()
