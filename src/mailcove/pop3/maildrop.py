"""The maildrop: a user's INBOX as one POP3 session sees it, plus what sessions share.

A session takes a snapshot at login (RFC 1939: message numbers stay fixed for the session):
UIDs, sizes and UIDLs in message-number order. A message's UIDL is, in this order, the one kept
from the old server it was imported from (store.pop3_uidls), its X-UIDL header (with
`reuse_xuidl`), or our own (proto/pop3/uidl.py). Sizes, kept UIDLs and X-UIDL values never
change for a stored message (mailbox id, UIDVALIDITY and UID name immutable bytes), so they are
cached per process in `MaildropCache`: after the first session only the UID/flags index is read
at login. With `hidden_flag` (Dovecot's pop3_deleted_flag, kept by an import), messages carrying
that keyword are not in the maildrop: the old server's POP3 had deleted them.

`MaildropLocks` gives one POP3 session per user (RFC 1939 section 8: the maildrop is locked in
the TRANSACTION state), in this process and across every process and node sharing the store: a
store lease `pop3:<user>` renewed while the session lives (docs/design/pop3.md, "Lock").
"""

from __future__ import annotations

import asyncio
import logging
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from mailcove.core import cooperative
from mailcove.core.errors import StoreError
from mailcove.proto.pop3.uidl import find_xuidl, own_uidl, usable_kept_uidl
from mailcove.store.api import MailStore

log = logging.getLogger("mailcove.pop3")

INBOX = "INBOX"
# Header bytes read per message to look for X-UIDL; a longer header block is not scanned further.
XUIDL_SCAN_BYTES = 16 * 1024
# Header reads in flight at once while filling the cache (the store's reader pool is small).
XUIDL_CONCURRENCY = 8
META_BATCH = 2000


@dataclass
class _BoxCache:
    sizes: dict[int, int] = field(default_factory=dict)
    xuidls: dict[int, bytes] = field(default_factory=dict)  # only messages that carry one
    kept: dict[int, bytes] = field(default_factory=dict)  # UIDLs kept from an old server


class MaildropCache:
    """Sizes and X-UIDL overrides per (mailbox id, UIDVALIDITY), bounded by message count."""

    def __init__(self, max_messages: int = 200_000) -> None:
        self.max_messages = max_messages
        self._boxes: OrderedDict[tuple[int, int], _BoxCache] = OrderedDict()
        self._total = 0

    def get(self, mailbox_id: int, uidvalidity: int) -> _BoxCache:
        key = (mailbox_id, uidvalidity)
        box = self._boxes.get(key)
        if box is None:
            box = self._boxes[key] = _BoxCache()
        else:
            self._boxes.move_to_end(key)
        return box

    def resize(self, box: _BoxCache, before: int) -> None:
        self._total += len(box.sizes) - before
        while self._total > self.max_messages and len(self._boxes) > 1:
            _key, old = self._boxes.popitem(last=False)
            if old is box:  # never evict the one being used; put it back as the newest
                self._boxes[_key] = old
                self._boxes.move_to_end(_key)
                continue
            self._total -= len(old.sizes)

    def __len__(self) -> int:
        return self._total


class MaildropLocks:
    """Users with a POP3 session in TRANSACTION.

    The set answers a second login in this process without a store round trip; the store lease
    is what holds across processes and nodes. A lease's owner names one session, so a session
    can never renew or release another's lock."""

    def __init__(self, store: MailStore, ttl: float) -> None:
        self._store = store
        self.ttl = ttl
        self._held: set[str] = set()

    @staticmethod
    def lease_name(user: str) -> str:
        return f"pop3:{user}"

    async def acquire(self, user: str, owner: str) -> bool:
        """Raises StoreError when the store cannot be asked (the session answers [SYS/TEMP])."""
        if user in self._held:
            return False
        self._held.add(user)
        try:
            ok = await self._store.acquire_lease(self.lease_name(user), owner, self.ttl)
        except BaseException:
            self._held.discard(user)
            raise
        if not ok:
            self._held.discard(user)
        return ok

    async def renew(self, user: str, owner: str) -> bool:
        return await self._store.renew_lease(self.lease_name(user), owner, self.ttl)

    async def release(self, user: str, owner: str) -> None:
        self._held.discard(user)
        try:
            await self._store.release_lease(self.lease_name(user), owner)
        except Exception as exc:  # the lease then frees itself by expiry
            log.warning("could not release the maildrop lock of %s: %s", user, exc)

    def held(self, user: str) -> bool:
        return user in self._held


class Maildrop:
    """One session's snapshot. Message number n is index n-1."""

    def __init__(
        self,
        user: str,
        mailbox_id: int,
        uidvalidity: int,
        uids: array[int],
        sizes: array[int],
        uidls: list[bytes],
        seen: bytearray,
    ) -> None:
        self.user = user
        self.mailbox_id = mailbox_id
        self.uidvalidity = uidvalidity
        self.uids = uids
        self.sizes = sizes
        self.uidls = uidls
        self.seen = seen  # 1 where the message already had \Seen at login
        self.deleted = bytearray(len(uids))
        self.retrieved = bytearray(len(uids))
        self.count = len(uids)  # not deleted
        self.octets = sum(sizes)
        self.deleted_count = 0
        self._list_cache: bytes | None = None
        self._uidl_cache: bytes | None = None

    def __len__(self) -> int:
        return len(self.uids)

    def index_of(self, msg: int) -> int | None:
        """The index of a message number that exists and is not deleted."""
        if 1 <= msg <= len(self.uids) and not self.deleted[msg - 1]:
            return msg - 1
        return None

    def exists(self, msg: int) -> bool:
        return 1 <= msg <= len(self.uids)

    def delete(self, i: int) -> None:
        self.deleted[i] = 1
        self.count -= 1
        self.octets -= self.sizes[i]
        self.deleted_count += 1
        self._list_cache = self._uidl_cache = None

    def reset(self) -> None:
        if self.deleted_count:
            self.deleted = bytearray(len(self.uids))
            self.count = len(self.uids)
            self.octets = sum(self.sizes)
            self.deleted_count = 0
            self._list_cache = self._uidl_cache = None

    def _live(self) -> range | list[int]:
        if not self.deleted_count:
            return range(len(self.uids))
        d = self.deleted
        return [i for i in range(len(self.uids)) if not d[i]]

    def list_lines(self) -> bytes:
        """LIST without argument, as "n size" lines joined by CRLF (cached until a DELE/RSET)."""
        if self._list_cache is None:
            s = self.sizes
            self._list_cache = b"\r\n".join([b"%d %d" % (i + 1, s[i]) for i in self._live()])
        return self._list_cache

    def uidl_lines(self) -> bytes:
        if self._uidl_cache is None:
            u = self.uidls
            self._uidl_cache = b"\r\n".join([b"%d %s" % (i + 1, u[i]) for i in self._live()])
        return self._uidl_cache

    def marked(self) -> tuple[list[int], list[int]]:
        """(UIDs to expunge, UIDs to mark \\Seen) for the UPDATE state."""
        uids = self.uids
        expunge = [uids[i] for i in range(len(uids)) if self.deleted[i]] if self.deleted_count else []
        seen = [
            uids[i]
            for i in range(len(uids))
            if self.retrieved[i] and not self.deleted[i] and not self.seen[i]
        ]
        return expunge, seen


async def open_maildrop(
    store: MailStore, user: str, cache: MaildropCache, *, reuse_xuidl: bool = True, hidden_flag: str = ""
) -> Maildrop:
    """Snapshot the user's INBOX. Raises StoreError (the session answers [SYS/TEMP])."""
    box = await store.get_mailbox(user, INBOX)
    index = await store.index(box.id)
    cached = cache.get(box.id, box.uidvalidity)
    before = len(cached.sizes)
    sizes_map = cached.sizes
    missing = [u for u in index.uids if u not in sizes_map]
    if missing:
        new_sizes: dict[int, int] = {}
        headers: dict[int, int] = {}
        for i in range(0, len(missing), META_BATCH):
            for meta in await store.fetch_meta(box.id, missing[i : i + META_BATCH]):
                new_sizes[meta.uid] = meta.size
                headers[meta.uid] = meta.info.root.body_start
        if new_sizes:
            kept = await store.pop3_uidls(box.id, min(new_sizes))
            cached.kept.update((u, v.encode()) for u, v in kept.items() if u in new_sizes)
        if reuse_xuidl and new_sizes:
            found = await _scan_xuidls(store, box.id, [(u, headers[u]) for u in new_sizes if u not in cached.kept])
            cached.xuidls.update(found)
        sizes_map.update(new_sizes)
    if len(sizes_map) > len(index.uids) + 1000:
        # Forget messages expunged since: the cache holds at most what is in the mailbox now.
        live = set(index.uids)
        for uid in [u for u in sizes_map if u not in live]:
            del sizes_map[uid]
            cached.xuidls.pop(uid, None)
            cached.kept.pop(uid, None)
    cache.resize(cached, before)

    # A message expunged between index() and fetch_meta() is not in sizes_map: leave it out.
    uids = array("Q")
    sizes = array("Q")
    seen = bytearray()
    flags = index.flags
    for i, uid in enumerate(index.uids):
        if not i % 1024:
            await cooperative.pause()  # 100,000 messages: other clients are served in between
        size = sizes_map.get(uid)
        if size is None or (hidden_flag and hidden_flag in flags[i]):
            continue
        uids.append(uid)
        sizes.append(size)
        seen.append(1 if "\\Seen" in flags[i] else 0)
    uidvalidity = box.uidvalidity
    uidls: list[bytes] = []
    for i in range(0, len(uids), 4096):
        await cooperative.pause()
        uidls += [own_uidl(uidvalidity, u) for u in uids[i : i + 4096]]
    if cached.xuidls or cached.kept:
        taken: set[bytes] = set()
        xu, kept = cached.xuidls if reuse_xuidl else {}, cached.kept
        for i, uid in enumerate(uids):
            value = kept.get(uid)
            if value is not None and not usable_kept_uidl(value, uidls[i]):
                value = None
            if value is None:
                value = xu.get(uid)
            # The lowest UID keeps a duplicated value, so an older message's UIDL never changes
            # when a newer one arrives carrying the same X-UIDL.
            if value is not None and value not in taken:
                taken.add(value)
                uidls[i] = value
    return Maildrop(user, box.id, uidvalidity, uids, sizes, uidls, seen)


async def _scan_xuidls(store: MailStore, mailbox_id: int, items: Sequence[tuple[int, int]]) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    sem = asyncio.Semaphore(XUIDL_CONCURRENCY)

    async def one(uid: int, header_len: int) -> None:
        async with sem:
            try:
                head = await store.read_message(mailbox_id, uid, 0, min(header_len, XUIDL_SCAN_BYTES))
            except StoreError:
                return  # expunged meanwhile
        value = find_xuidl(head)
        if value is not None:
            found[uid] = value

    for i in range(0, len(items), 1000):
        await asyncio.gather(*(one(u, h) for u, h in items[i : i + 1000]))
    return found
