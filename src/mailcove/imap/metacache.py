"""The decoded metadata of recently fetched messages, shared by every session of the process.

A FETCH of ENVELOPE, BODYSTRUCTURE, RFC822.SIZE or INTERNALDATE needs each message's MessageInfo.
Reading it from the store costs a round trip to a reader thread (or PostgreSQL) and decoding the
stored MessageInfo (about 150 µs for a small multipart message on this machine); clients ask for
the same messages again and again (Thunderbird's header fetch after each new-mail check, imaptest's
random FETCHes over a few hundred messages). What FETCH reads from a MessageMeta (size,
INTERNALDATE, structure) never changes under a UID, so an entry never goes stale in those; the
flags and modseq in a cached entry are as they were when it was read, and nobody reads them from
here: the MailboxCache owns those.

An entry also keeps the message's header as served, once read (up to HEADER_MAX bytes), for
BODY[HEADER], BODY[HEADER.FIELDS (...)] and RFC822.HEADER: imaptest asks for header fields in
about half its FETCHes, each naming up to 100 messages whose bodies were read again every time.
And it keeps the message's ENVELOPE, BODYSTRUCTURE and BODY as sent, once formatted:
they never change under a UID either, and formatting them again for every FETCH (addresses,
string quoting, parameters of each part) was the largest single cost of imaptest's logout=0 load
once the metadata was cached (`_value` 19% of the event loop's samples, docs/design/).

Keyed by (mailbox id, UIDVALIDITY, UID), so a mailbox deleted and created again (new UIDVALIDITY)
never meets the old one's entries. Bounded: least recently used out first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

from mailcove.message.model import MessageInfo
from mailcove.store.api import MailStore, MessageMeta

# About 2.7 KB per entry (one decoded MessageInfo of a small multipart message), plus up to ~1 KB
# per formatted item a client asked for: ~55-115 MB at most.
MAX_ENTRIES = 20_000

Key = tuple[int, int, int]
Formatter = Callable[[MessageInfo, bool], bytes]  # (info, UTF8=ACCEPT) -> the item as sent
HEADER_MAX = 8 * 1024  # a longer header (hundreds of Received lines) is read each time


class _Entry:
    __slots__ = ("formatted", "header", "meta")

    def __init__(self, meta: MessageMeta) -> None:
        self.meta = meta
        self.formatted: dict[tuple[str, bool], bytes] = {}
        self.header: bytes | None = None


class MetaCache:
    def __init__(self, store: MailStore, max_entries: int = MAX_ENTRIES) -> None:
        self.store = store
        self.max_entries = max_entries
        self._entries: OrderedDict[Key, MessageMeta] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, mailbox_id: int, uidvalidity: int, uids: Sequence[int]) -> dict[int, MessageMeta]:
        """uid -> MessageMeta for each of `uids` the store still has; only the misses are read."""
        entries = self._entries
        found: dict[int, MessageMeta] = {}
        missing: list[int] = []
        for uid in uids:
            key = (mailbox_id, uidvalidity, uid)
            entry = entries.get(key)
            if entry is None:
                missing.append(uid)
            else:
                entries.move_to_end(key)
                found[uid] = entry.meta
        if missing:
            metas = await self.store.fetch_meta(mailbox_id, missing)
            self.put(mailbox_id, uidvalidity, metas)
            for meta in metas:
                found[meta.uid] = meta
        return found

    def formatted(self, mailbox_id: int, uidvalidity: int, meta: MessageMeta, item: str, utf8: bool,
                  make: Formatter) -> bytes:
        """`make(meta.info, utf8)`, kept with the message's entry for the next FETCH of `item`."""
        entry = self._entries.get((mailbox_id, uidvalidity, meta.uid))
        if entry is None or entry.meta.info is not meta.info:  # evicted, or replaced meanwhile
            return make(meta.info, utf8)
        key = (item, utf8)
        value = entry.formatted.get(key)
        if value is None:
            value = entry.formatted[key] = make(meta.info, utf8)
        return value

    def header(self, mailbox_id: int, uidvalidity: int, meta: MessageMeta) -> bytes | None:
        """The message's header as served ([0, root.body_start)), if kept."""
        entry = self._entries.get((mailbox_id, uidvalidity, meta.uid))
        if entry is None or entry.meta.info is not meta.info:
            return None
        return entry.header

    def keep_header(self, mailbox_id: int, uidvalidity: int, meta: MessageMeta, served: bytes) -> None:
        """Keep the header of `served` (the message as served, at least its header) for `header`."""
        end = meta.info.root.body_start
        if end > HEADER_MAX or len(served) < end:
            return
        entry = self._entries.get((mailbox_id, uidvalidity, meta.uid))
        if entry is not None and entry.meta.info is meta.info and entry.header is None:
            entry.header = served[:end]

    def put(self, mailbox_id: int, uidvalidity: int, metas: Iterable[MessageMeta]) -> None:
        entries = self._entries
        for meta in metas:
            key = (mailbox_id, uidvalidity, meta.uid)
            old = entries.get(key)
            if old is None or old.meta.info is not meta.info:
                entries[key] = _Entry(meta)
            else:
                entries.move_to_end(key)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)

    def forget(self, mailbox_id: int, uidvalidity: int, uids: Iterable[int]) -> None:
        """Expunged messages: a FETCH that still names one is answered as the store answers it."""
        for uid in uids:
            self._entries.pop((mailbox_id, uidvalidity, uid), None)
