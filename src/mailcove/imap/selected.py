"""The selected mailbox: one shared cache per open mailbox in the process, and one view per session.

`MailboxCache` is the process's current picture of a mailbox (UIDs, flags, modseqs as columns, from
`store.index()`), shared by every session that has it selected and kept current from the change bus
instead of being reloaded: loading a 100,000-row map costs ~80 ms of GIL time (DESIGN.md section 5),
so a second SELECT of a busy mailbox must not pay it again.

`SelectedView` is what one session's client has been told: its own sequence-number map (a copy of
the UID column taken at SELECT), plus what happened since and has not been announced yet (expunged
UIDs, UIDs whose flags changed). A session announces at the moments RFC 9051 section 7.4.1 allows:
EXPUNGE / VANISHED never while a FETCH, STORE or SEARCH (or SORT/THREAD, which also return sequence
numbers) is answered, at once during IDLE. New messages (EXISTS) and flag changes (FETCH) may be
sent at the end of any command.

\\Recent (IMAP4rev1 only; rev2 dropped it): per mailbox, the first read-write session (SELECT,
not EXAMINE) that is shown a message gets it as \\Recent, and no other session does, whichever
worker process serves it. imap/recent.py keeps, per mailbox, the highest UID handed out, in a
table in the data dir shared by the worker processes; it outlives restarts, as Dovecot's mark
does. The first SELECT of a mailbox nobody selected before gets every message as recent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from mailcove.core import cooperative
from mailcove.imap.metacache import MetaCache
from mailcove.imap.recent import RecentFloors
from mailcove.proto.imap.seqset import SeqSet
from mailcove.store.api import IndexEntry, Mailbox, MailboxIndex, MailStore
from mailcove.store.changes import Change, Subscription

log = logging.getLogger("mailcove.imap")

# Above this many UIDs in one change, re-reading the whole index is cheaper than fetching the
# rows one by one through fetch_meta (which also decodes each message's MessageInfo).
_RELOAD_THRESHOLD = 256
SEEN = "\\Seen"
LINGER = 60.0  # seconds an unused mailbox cache is kept (current) in case it is selected again
MAX_LINGERING = 64
# Sessions woken per turn of the event loop after a change (IDLE answers it at once): 2,000 IDLE
# sessions on one mailbox woken in the same turn would answer one after the other (~0.2 ms each)
# before any other client is served again.
WAKE_BATCH = 32
# Flag changes applied to a cache between two chances to yield (a STORE 1:* of 100,000 messages).
APPLY_STEP = 2048


class MailboxCache:
    """The current state of one mailbox, shared by the sessions of this process."""

    def __init__(self, registry: CacheRegistry, mailbox: Mailbox, index: MailboxIndex) -> None:
        self.registry = registry
        self.user = mailbox.user
        self.mailbox_id = mailbox.id
        # A mailbox is (id, UIDVALIDITY), never its name: a name deleted and created again is a
        # new mailbox, and a cache of the old one must never answer for it.
        self.uidvalidity = mailbox.uidvalidity
        self.name = mailbox.name
        # Set once the store no longer has this mailbox: sessions that have it selected are
        # disconnected (as Dovecot does), and the registry forgets it.
        self.deleted = False
        self.uids: array[int] = index.uids
        # True while some SelectedView holds `self.uids` itself as its sequence map (no copy per
        # session): the array must then be copied before it is changed (copy-on-write).
        self.shared = False
        # uid -> search.Light: the decoded header fields SEARCH compares, filled by searches
        self.light: dict[int, Any] = {}
        self.flags: list[frozenset[str]] = index.flags
        self.modseqs: array[int] = index.modseqs
        self.highestmodseq = max(self.modseqs) if self.modseqs else 0
        # The highest UID this cache has held, expunged or not: the bottom of the range in which
        # an append may have UIDs still unseen here (CacheRegistry.add_appended).
        self.top_uid = self.uids[-1] if self.uids else 0
        self.views: set[SelectedView] = set()
        self.refs = 0
        self.keywords: set[str] = set()
        for fl in set(self.flags):
            self.keywords.update(f for f in fl if not f.startswith("\\"))

    # --- lookups -----------------------------------------------------------------------------

    def pos(self, uid: int) -> int | None:
        i = bisect_left(self.uids, uid)
        return i if i < len(self.uids) and self.uids[i] == uid else None

    def flags_of(self, uid: int) -> frozenset[str] | None:
        i = self.pos(uid)
        return None if i is None else self.flags[i]

    def modseq_of(self, uid: int) -> int | None:
        i = self.pos(uid)
        return None if i is None else self.modseqs[i]

    # --- updates (idempotent: the session's own result and the bus's later copy both arrive) ---

    async def apply_flags(self, entries: Sequence[IndexEntry], origin: SelectedView | None = None) -> None:
        """Take new flags and modseqs (older than what the cache has: ignored). Applied in steps
        of APPLY_STEP: each message's flags and modseq change together, and the other sessions
        are told once all are in."""
        changed: list[int] = []
        sets: set[frozenset[str]] = set()  # flag sets whose keywords are known already
        for start in range(0, len(entries), APPLY_STEP):
            if start:
                await cooperative.pause()
            self._apply_flags(entries[start : start + APPLY_STEP], changed, sets)
        if changed:
            for view in self.views:
                if view is not origin:
                    view.pending_flags.update(changed)
            self._wake()

    def _apply_flags(self, entries: Sequence[IndexEntry], changed: list[int], sets: set[frozenset[str]]) -> None:
        uids, flags, modseqs = self.uids, self.flags, self.modseqs
        n = len(uids)
        i = 0
        for e in entries:
            uid = e.uid
            # Entries come in UID order as a rule: try the position after the last one first.
            if i >= n or uids[i] != uid:
                i = bisect_left(uids, uid)
                if i >= n or uids[i] != uid:
                    continue
            if e.modseq < modseqs[i] or (e.modseq == modseqs[i] and e.flags == flags[i]):
                i += 1
                continue
            flags[i] = e.flags
            modseqs[i] = e.modseq
            if e.flags not in sets:
                sets.add(e.flags)
                self.keywords.update(f for f in e.flags if not f.startswith("\\"))
            changed.append(uid)
            if e.modseq > self.highestmodseq:
                self.highestmodseq = e.modseq
            i += 1

    def _own_uids(self) -> None:
        if self.shared:
            self.uids = array("Q", self.uids)
            self.shared = False

    def apply_expunge(self, uids: Sequence[int], modseq: int = 0) -> None:
        gone = set(uids)
        before = self.uids  # views in step hold this very array: they have every removed UID
        if not any(self.pos(u) is not None for u in gone):
            self.highestmodseq = max(self.highestmodseq, modseq)
            return
        self._own_uids()
        keep_u, keep_f, keep_m = array("Q"), [], array("Q")
        removed: dict[int, tuple[frozenset[str], int]] = {}
        if len(gone) * 8 < len(self.uids):
            # Few: delete in place (each a memmove), newest first so positions stay valid.
            for uid in sorted(gone, reverse=True):
                i = self.pos(uid)
                if i is None:
                    continue
                removed[uid] = (self.flags[i], self.modseqs[i])
                del self.uids[i]
                del self.flags[i]
                del self.modseqs[i]
        else:
            for uid, fl, ms in zip(self.uids, self.flags, self.modseqs, strict=True):
                if uid in gone:
                    removed[uid] = (fl, ms)
                else:
                    keep_u.append(uid)
                    keep_f.append(fl)
                    keep_m.append(ms)
            self.uids, self.flags, self.modseqs = keep_u, keep_f, keep_m
        self.highestmodseq = max(self.highestmodseq, modseq)
        if self.light:
            for uid in removed:
                self.light.pop(uid, None)
        if removed:
            self.registry.metas.forget(self.mailbox_id, self.uidvalidity, removed)
            for view in self.views:
                view.note_expunged(removed, all_present=view.uids is before)
            self._wake()

    def apply_append(self, entries: Sequence[IndexEntry]) -> None:
        added = False
        entries = sorted(entries, key=lambda e: e.uid)
        last = self.uids[-1] if self.uids else 0
        if entries and entries[0].uid > last and all(a.uid < b.uid for a, b in pairwise(entries)):
            # All new and above the map (a COPY of 100,000 messages): extended in bulk.
            self._own_uids()
            self.uids.extend(e.uid for e in entries)
            self.flags.extend(e.flags for e in entries)
            self.modseqs.extend(e.modseq for e in entries)
            for fl in {e.flags for e in entries}:
                self.keywords.update(f for f in fl if not f.startswith("\\"))
            self.highestmodseq = max(self.highestmodseq, max(e.modseq for e in entries))
            self.top_uid = max(self.top_uid, entries[-1].uid)
            self._wake()
            return
        if entries and not all(self.pos(e.uid) is not None for e in entries):
            self._own_uids()
        for e in entries:
            last = self.uids[-1] if self.uids else 0
            if e.uid > last:
                self.uids.append(e.uid)
                self.flags.append(e.flags)
                self.modseqs.append(e.modseq)
            else:
                # Out of order (another writer's change arrived after ours): insert, unless known.
                i = bisect_left(self.uids, e.uid)
                if i < len(self.uids) and self.uids[i] == e.uid:
                    continue
                self.uids.insert(i, e.uid)
                self.flags.insert(i, e.flags)
                self.modseqs.insert(i, e.modseq)
            self.keywords.update(f for f in e.flags if not f.startswith("\\"))
            self.highestmodseq = max(self.highestmodseq, e.modseq)
            self.top_uid = max(self.top_uid, e.uid)
            added = True
        if added:
            self._wake()

    async def replace(self, index: MailboxIndex) -> None:
        """A full reload (after the bus overflowed or a large change): diff against what we had."""
        new_pos = {uid: i for i, uid in enumerate(index.uids)}
        gone = [u for u in self.uids if u not in new_pos]
        if gone:
            self.apply_expunge(gone)
        old = {uid: (fl, ms) for uid, fl, ms in zip(self.uids, self.flags, self.modseqs, strict=True)}
        appended = [IndexEntry(u, index.flags[i], index.modseqs[i]) for u, i in new_pos.items() if u not in old]
        changed = [
            IndexEntry(u, index.flags[i], index.modseqs[i])
            for u, i in new_pos.items()
            if u in old and old[u] != (index.flags[i], index.modseqs[i])
        ]
        await self.apply_flags(changed)
        if appended:
            self.apply_append(appended)

    def _wake(self) -> None:
        views = [v for v in self.views if not v.wakeup.is_set()]
        _wake_batch(views, 0)

    # --- \Recent -----------------------------------------------------------------------------

    @property
    def recent_floor(self) -> int | None:
        """The highest UID handed out as \\Recent by any session of the server (imap/recent.py)."""
        return self.registry.recent.get((self.mailbox_id, self.uidvalidity))

    def unclaimed_recent(self) -> int:
        """How many messages no session has been given as \\Recent yet (STATUS RECENT, and the
        RECENT count EXAMINE reports without claiming them)."""
        floor = self.recent_floor or 0
        return len(self.uids) - bisect_right(self.uids, floor)

    def claim_recent(self, up_to_uid: int) -> tuple[int, int] | None:
        """The UIDs in (floor, up_to_uid] no session was given as \\Recent yet, as an interval;
        they are now the caller's. Without a floor (a mailbox nobody selected before) every UID
        up to `up_to_uid` is claimed, as Dovecot does."""
        return self.registry.recent.claim((self.mailbox_id, self.uidvalidity), up_to_uid)


async def _all_applied(cache: MailboxCache, uids: Sequence[int], modseq: int) -> bool:
    """Whether the cache has every one of `uids` at `modseq` or later (or no longer has it)."""
    for start in range(0, len(uids), APPLY_STEP):
        if start:
            await cooperative.pause()
        if not all((cache.modseq_of(u) or modseq) >= modseq for u in uids[start : start + APPLY_STEP]):
            return False
    return True


def _wake_batch(views: list[SelectedView], start: int) -> None:
    """Wake WAKE_BATCH views, and the next batch at the next turn of the loop (after the sessions
    just woken have run and the sockets were polled)."""
    end = start + WAKE_BATCH
    for view in views[start:end]:
        if not view.closed:
            view.wakeup.set()
    if end < len(views):
        try:
            asyncio.get_running_loop().call_soon(_wake_batch, views, end)
        except RuntimeError:  # no loop running (a test of the cache alone): at once
            _wake_batch(views[end:], 0)


class RecentSet:
    """A session's \\Recent UIDs as half-open intervals (lo, hi]: claims are always contiguous
    UID ranges, so 100,000 recent messages cost one pair instead of a 5 MB set of ints. The
    intervals are kept sorted and merged: a long session that claims each new message as it
    arrives (imaptest's logout=0 load: hundreds of APPENDs a session) keeps one interval, where
    one per claim made `count` and `in`, run on every announcement and FETCH FLAGS, grow with the
    session's age (5% of the event loop's time in that load)."""

    __slots__ = ("ranges",)

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []

    def add(self, interval: tuple[int, int] | None) -> None:
        if interval is None or interval[0] >= interval[1]:
            return
        ranges = self.ranges
        if ranges and ranges[-1][0] <= interval[0]:  # the usual case: at or after the last one
            lo, hi = ranges[-1]
            if interval[0] <= hi:
                ranges[-1] = (lo, max(hi, interval[1]))
            else:
                ranges.append(interval)
            return
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted([*ranges, interval]):
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        self.ranges = merged

    def __contains__(self, uid: object) -> bool:
        ranges = self.ranges
        i = bisect_left(ranges, (uid,))  # type: ignore[type-var]
        # the interval holding uid starts below it: the one before position i
        return i > 0 and ranges[i - 1][0] < uid <= ranges[i - 1][1]  # type: ignore[operator]

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def count(self, uids: array[int]) -> int:
        """How many of `uids` (the session's view, which still holds every message it has not
        been told is expunged) are \\Recent. An interval none of them is in is dropped: its
        messages are gone, and a new message's UID is above every interval ever claimed."""
        counts = [bisect_right(uids, hi) - bisect_right(uids, lo) for lo, hi in self.ranges]
        if 0 in counts:
            self.ranges = [r for r, n in zip(self.ranges, counts, strict=True) if n]
        return sum(counts)


class SelectedView:
    """One session's picture of its selected mailbox."""

    def __init__(self, cache: MailboxCache, *, readonly: bool, rev1: bool, uidvalidity: int) -> None:
        self.cache = cache
        self.readonly = readonly
        self.rev1 = rev1
        self.uidvalidity = uidvalidity
        # This session's sequence-number map: the cache's own array while they agree (shared by
        # every session in step, copy-on-write), a private one while announcements are pending.
        self.uids: array[int] = cache.uids
        cache.shared = True
        self.pending_expunged: set[int] = set()
        # Flags and modseq of messages expunged elsewhere that this client has not been told of
        # yet: it may still FETCH them (RFC 9051 7.4.1 forbids the EXPUNGE mid-command).
        self.expunged_meta: dict[int, tuple[frozenset[str], int]] = {}
        # The keywords this client was shown in FLAGS: a keyword must be announced there before
        # any FETCH uses it (RFC 9051 7.3.5, RFC 3501 7.2.6).
        self.announced_keywords: frozenset[str] = frozenset()
        self.pending_flags: set[int] = set()
        self.recent = RecentSet()
        # The RECENT count this client was last told: RECENT is sent again only when it changes
        # (RFC 3501 7.3.2), after new mail or an expunge, as Dovecot does.
        self.announced_recent = -1
        self.wakeup = asyncio.Event()
        self.closed = False
        cache.views.add(self)
        if rev1:
            self._take_recent(self.uids[-1] if self.uids else 0)

    def _take_recent(self, up_to_uid: int) -> None:
        """\\Recent for the messages up to `up_to_uid`: claimed by a read-write session; a
        read-only one (EXAMINE) shows what nobody has claimed yet and claims nothing (RFC 3501
        6.3.2: EXAMINE must not make messages lose \\Recent), as Dovecot does."""
        if not self.readonly:
            self.recent.add(self.cache.claim_recent(up_to_uid))
            return
        floor = self.cache.recent_floor or 0
        if up_to_uid > floor:
            self.recent.add((floor, up_to_uid))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.cache.views.discard(self)
            self.cache.registry.release(self.cache)

    # --- sequence numbers --------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        i = bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    @property
    def max_uid(self) -> int:
        return self.uids[-1] if self.uids else 0

    def resolve(self, seqset: SeqSet, uid: bool, saved: Sequence[int] | None = None) -> list[int]:
        """The UIDs a command's set names, ascending, only messages in this view. Sequence numbers
        outside 1..n are ignored here; `bad_seqs` tells whether the client named any."""
        if seqset.saved:
            if saved is None:
                return []
            return [u for u in saved if self.seq_of(u) is not None]
        out: list[int] = []
        if uid:
            for a, b in seqset.resolve(self.max_uid):
                lo = bisect_left(self.uids, a)
                hi = bisect_right(self.uids, b)
                out.extend(self.uids[lo:hi])
        else:
            for a, b in seqset.clip(len(self.uids)):
                out.extend(self.uids[a - 1 : b])
        return out

    def bad_seqs(self, seqset: SeqSet) -> bool:
        """RFC 9051 6.4.5 / 9.: a sequence number above the count is an error (BAD)."""
        if seqset.saved:
            return False
        n = len(self.uids)
        return any(x > n or (x == 0 and n == 0) for pair in seqset.ranges for x in pair)

    def flags_of(self, uid: int) -> frozenset[str]:
        """The message's flags, including for one expunged elsewhere and not yet announced."""
        fl = self.cache.flags_of(uid)
        if fl is None:
            fl = self.expunged_meta.get(uid, (frozenset(), 0))[0]
        return fl  # \\Recent is not a stored flag: see `recent`

    def modseq_of(self, uid: int) -> int:
        """The message's modseq, for one expunged elsewhere too: never 0 (RFC 7162 3.1.4)."""
        ms = self.cache.modseq_of(uid)
        if ms is None:
            ms = self.expunged_meta.get(uid, ((), 0))[1]
        return ms or 1

    def recent_count(self) -> int:
        return self.recent.count(self.uids)

    def unannounced_keywords(self) -> bool:
        return not self.cache.keywords <= self.announced_keywords

    def is_expunged(self, uid: int) -> bool:
        return uid in self.pending_expunged

    @property
    def in_step(self) -> bool:
        """True when position i of this view is position i of the cache (the fast FETCH path)."""
        return self.uids is self.cache.uids

    def note_expunged(self, removed: dict[int, tuple[frozenset[str], int]], all_present: bool = False) -> None:
        """`all_present`: this view's map is the cache's map from before the expunge, so every
        removed UID is in it (100,000 of them are taken in bulk, not looked up one by one)."""
        if all_present:
            self.pending_expunged.update(removed)
            self.expunged_meta.update(removed)
        else:
            for uid, meta in removed.items():
                if self.seq_of(uid) is not None:
                    self.pending_expunged.add(uid)
                    self.expunged_meta[uid] = meta
        self.pending_flags.difference_update(removed)

    # --- announcing --------------------------------------------------------------------------

    def new_uids(self) -> array[int]:
        """UIDs the cache has that this view has not taken in yet."""
        i = bisect_right(self.cache.uids, self.max_uid)
        return self.cache.uids[i:]

    def take_expunges(self) -> tuple[list[int], list[int]]:
        """Remove announced expunges from the map: (sequence numbers in descending order, so
        each is valid when sent, and the UIDs)."""
        if not self.pending_expunged:
            return [], []
        gone = self.pending_expunged
        seqs = sorted((s for s in (self.seq_of(u) for u in gone) if s is not None), reverse=True)
        # Never change the array in place: it may be the cache's or another session's.
        if len(gone) * 8 < len(self.uids):
            uids_copy = array("Q", self.uids)
            for s in seqs:
                del uids_copy[s - 1]
            self.uids = uids_copy
        else:
            self.uids = array("Q", [u for u in self.uids if u not in gone])
        uids = sorted(gone)
        self.pending_expunged = set()
        for u in uids:
            self.expunged_meta.pop(u, None)
        if not self.new_uids():
            self._adopt()
        return seqs, uids

    def take_new(self) -> int:
        """Extend the map with new messages; returns how many were added."""
        new = self.new_uids()
        if not new:
            return 0
        if self.rev1:
            self._take_recent(new[-1])
        self.uids = self.uids + new  # a new array: the old one may be shared
        self._adopt()
        return len(new)

    def _adopt(self) -> None:
        """Back in step with the cache: share its array instead of keeping a private copy."""
        cache = self.cache
        if self.uids is not cache.uids and not self.pending_expunged and self.uids == cache.uids:
            self.uids = cache.uids
            cache.shared = True

    def take_flag_changes(self) -> list[int]:
        if not self.pending_flags:
            return []
        out = sorted(u for u in self.pending_flags if u not in self.pending_expunged)
        self.pending_flags = set()
        return out


class CacheRegistry:
    """Every open MailboxCache of the process, and one change-bus subscription per user with open
    mailboxes that keeps them current."""

    def __init__(self, store: MailStore, recent: RecentFloors) -> None:
        self.store = store
        self.metas = MetaCache(store)
        self.recent = recent
        self.caches: dict[int, MailboxCache] = {}
        self._loading: dict[int, asyncio.Future[MailboxCache]] = {}
        self._early: dict[int, list[Change]] = {}
        self._pumps: dict[str, tuple[Subscription, asyncio.Task[None]]] = {}
        self._lingering: dict[int, asyncio.TimerHandle] = {}
        self._locks: dict[str, asyncio.Lock] = {}  # per user: the pump and `settle` take turns

    def current(self, mailbox: Mailbox) -> MailboxCache | None:
        """The open cache of exactly this mailbox (same id and UIDVALIDITY), if any."""
        cache = self.caches.get(mailbox.id)
        if cache is None or cache.deleted or cache.uidvalidity != mailbox.uidvalidity:
            return None
        return cache

    async def open(self, mailbox: Mailbox) -> MailboxCache:
        cache = self.caches.get(mailbox.id)
        if cache is not None and cache.uidvalidity != mailbox.uidvalidity:
            # The store's row is newer than the cache (a DELETE + CREATE, or a RENAME, whose
            # change has not been pumped yet): the cache answers for nothing any more.
            self._retire(cache)
            cache = None
        if cache is not None:
            timer = self._lingering.pop(mailbox.id, None)
            if timer is not None:
                timer.cancel()
            cache.refs += 1
            return cache
        mailbox_id = mailbox.id
        pending = self._loading.get(mailbox_id)
        if pending is not None:
            cache = await asyncio.shield(pending)
            if cache.uidvalidity == mailbox.uidvalidity:
                cache.refs += 1
                return cache
            return await self.open(mailbox)
        user = mailbox.user
        self._ensure_pump(user)
        fut: asyncio.Future[MailboxCache] = asyncio.get_running_loop().create_future()
        self._loading[mailbox_id] = fut
        self._early[mailbox_id] = []
        try:
            index = await self.store.index(mailbox_id)
        except BaseException as exc:
            self._loading.pop(mailbox_id, None)
            self._early.pop(mailbox_id, None)
            fut.set_exception(exc)
            fut.exception()  # retrieved: waiters re-raise it; no "never retrieved" warning
            self._maybe_stop_pump(user)
            raise
        cache = MailboxCache(self, mailbox, index)
        cache.refs = 1
        self.caches[mailbox_id] = cache
        del self._loading[mailbox_id]
        fut.set_result(cache)
        # Changes the bus delivered while the index was being read: apply them (idempotent).
        for change in self._early.pop(mailbox_id, []):
            await self._apply(cache, change)
        return cache

    def _retire(self, cache: MailboxCache) -> None:
        """The store no longer has this mailbox: forget its cache and make the sessions that
        have it selected leave (they see `cache.deleted` at their next announcement)."""
        cache.deleted = True
        if self.caches.get(cache.mailbox_id) is cache:
            del self.caches[cache.mailbox_id]
            timer = self._lingering.pop(cache.mailbox_id, None)
            if timer is not None:
                timer.cancel()
        self.recent.forget((cache.mailbox_id, cache.uidvalidity))
        cache._wake()
        self._maybe_stop_pump(cache.user)

    async def _check_mailboxes(self, user: str, mailbox_ids: set[int]) -> None:
        """After a mailbox change (CREATE, DELETE, RENAME): is each cached mailbox still the one
        the store has under its id? Gone or \\Noselect: deleted. A new UIDVALIDITY under the
        same name: deleted and created again. A new UIDVALIDITY under a new name: renamed, the
        same messages, so the cache carries on under the new identity."""
        caches = [c for c in self.caches.values() if c.user == user and c.mailbox_id in mailbox_ids]
        if not caches:
            return
        rows = {mb.id: mb for mb in await self.store.list_mailboxes(user)}
        for cache in caches:
            mb = rows.get(cache.mailbox_id)
            if mb is None or mb.noselect or (mb.uidvalidity != cache.uidvalidity and mb.name == cache.name):
                self._retire(cache)
            elif mb.uidvalidity != cache.uidvalidity:
                self.recent.move((cache.mailbox_id, cache.uidvalidity), (cache.mailbox_id, mb.uidvalidity))
                cache.uidvalidity, cache.name = mb.uidvalidity, mb.name
            elif mb.name != cache.name:
                cache.name = mb.name

    def release(self, cache: MailboxCache) -> None:
        """A session left the mailbox. The last one out does not drop the cache at once: clients
        re-SELECT the same mailbox all the time (a poll, a folder switch and back), and a 100,000
        message index costs ~80 ms to load. It lingers, kept current, for LINGER seconds."""
        cache.refs -= 1
        if cache.refs > 0 or self.caches.get(cache.mailbox_id) is not cache:
            return
        if len(self._lingering) >= MAX_LINGERING:
            oldest = next(iter(self._lingering))
            self._lingering.pop(oldest).cancel()
            self._drop(oldest)
        loop = asyncio.get_running_loop()
        self._lingering[cache.mailbox_id] = loop.call_later(LINGER, self._drop, cache.mailbox_id)

    def _drop(self, mailbox_id: int) -> None:
        self._lingering.pop(mailbox_id, None)
        cache = self.caches.get(mailbox_id)
        if cache is not None and cache.refs <= 0:
            del self.caches[mailbox_id]
            self._maybe_stop_pump(cache.user)

    def _ensure_pump(self, user: str) -> None:
        if user in self._pumps:
            return
        sub = self.store.changes.subscribe(user)
        self._locks[user] = asyncio.Lock()
        task = asyncio.get_running_loop().create_task(self._pump(sub), name=f"imap-changes-{user}")
        self._pumps[user] = (sub, task)

    def _maybe_stop_pump(self, user: str) -> None:
        if any(c.user == user for c in self.caches.values()):
            return
        if any(True for _ in self._loading):
            return
        entry = self._pumps.pop(user, None)
        self._locks.pop(user, None)
        if entry is not None:
            sub, task = entry
            sub.close()
            task.cancel()

    async def _pump(self, sub: Subscription) -> None:
        lock = self._locks[sub.user]
        while True:
            await sub.wait()
            async with lock:
                await self._drain(sub)

    async def settle(self, user: str) -> None:
        """Apply every change the bus already holds for `user` before going on: a session calls
        this at the end of each command, so what another session of this process committed
        before this command ended (a COPY into this mailbox, say) is announced now, as a client
        polling with NOOP expects, not whenever the pump task next runs. The pump holds the same
        lock while it applies a batch, so no change is half-applied when this returns."""
        entry = self._pumps.get(user)
        if entry is None:
            return
        sub = entry[0]
        lock = self._locks[user]
        if not lock.locked() and not sub.pending:
            return
        async with lock:
            await self._drain(sub)

    async def _drain(self, sub: Subscription) -> None:
        overflowed = sub.overflowed
        sub.overflowed = False
        changes = sub.drain()
        try:
            if overflowed:
                for cache in [c for c in self.caches.values() if c.user == sub.user]:
                    await cache.replace(await self.store.index(cache.mailbox_id))
                return
            touched = {c.mailbox_id for c in changes if c.kind == "mailbox"}
            if touched:
                await self._check_mailboxes(sub.user, touched)
            for change in changes:
                if change.kind == "mailbox":
                    continue
                if change.mailbox_id in self._early:
                    self._early[change.mailbox_id].append(change)
                    continue
                cache = self.caches.get(change.mailbox_id)
                if cache is not None:
                    await self._apply(cache, change)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("applying mailbox changes failed; reloading")
            for cache in [c for c in self.caches.values() if c.user == sub.user]:
                with contextlib.suppress(Exception):
                    await cache.replace(await self.store.index(cache.mailbox_id))

    async def add_appended(self, cache: MailboxCache, uids: Sequence[int],
                           entries: Sequence[IndexEntry] | None = None) -> None:
        """Add appended messages to a cache, together with every lower UID it has not seen yet.

        The store commits appends to one mailbox in UID order (they allocate under the mailbox
        row's lock), so once a UID is committed, every lower UID that will ever exist is too.
        Another process's or node's lower UID may still be on its way through the change bus
        when our own APPEND returns (or when a higher one arrives first): adding ours alone
        would put a UID below one the sessions have already announced, which a client that
        saw UID 7 must never see appear later (RFC 9051 2.3.1.1). Reading the gap from the
        store, after the commit, closes that whichever path gets here first. `entries` are
        the appended messages when the caller knows them (its own APPEND), else they are read."""
        top = max(uids)
        known = set(uids) if entries is not None else set()
        gap = [u for u in range(cache.top_uid + 1, top) if u not in known]
        wanted = gap if entries is not None else sorted({*gap, *uids})
        if len(wanted) > _RELOAD_THRESHOLD:
            await cache.replace(await self.store.index(cache.mailbox_id))
            return
        found = list(entries or ())
        if wanted:
            metas = await self.store.fetch_meta(cache.mailbox_id, wanted)
            # Clients fetch new mail's headers next (Thunderbird, imaptest): decoded once, here.
            self.metas.put(cache.mailbox_id, cache.uidvalidity, metas)
            found += [IndexEntry(m.uid, m.flags, m.modseq) for m in metas]
        cache.apply_append(found)

    async def _apply(self, cache: MailboxCache, change: Change) -> None:
        if change.kind == "expunge":
            cache.apply_expunge(change.uids, change.modseq)
        elif change.kind in ("append", "flags"):
            uids = change.uids
            if change.kind == "flags" and await _all_applied(cache, uids, change.modseq):
                return  # our own STORE, already applied
            if change.kind == "append" and all(cache.pos(u) is not None for u in uids):
                return
            if change.kind == "append":
                await self.add_appended(cache, uids)
                return
            if len(uids) > _RELOAD_THRESHOLD:
                await cache.replace(await self.store.index(cache.mailbox_id))
                return
            metas = await self.store.fetch_meta(cache.mailbox_id, uids)
            await cache.apply_flags([IndexEntry(m.uid, m.flags, m.modseq) for m in metas])
            # A UID the change names but the read did not find was expunged since; the expunge
            # change that follows removes it.

    async def aclose(self) -> None:
        for timer in self._lingering.values():
            timer.cancel()
        self._lingering.clear()
        for sub, task in self._pumps.values():
            sub.close()
            task.cancel()
        self._pumps.clear()
