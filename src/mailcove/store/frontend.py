"""The part of MailStore every backend shares: each verb runs its rule (store/rules/) through
the backend's driver, after the argument checks that need no database.

A backend supplies its driver, `_write(rule, *args)` (one transaction, durable when it returns)
and `_read(rule, *args)`, and where message bodies go: `_add_bytes` and `_add_file` store one
message for a list of (user, mailbox, flags) targets and, for submit, one outbound queue entry,
in one transaction (the delivery, a statement of its own on both backends).

A message with a prefix (api.MessagePrefix) is stored as its body, exactly as received, with the
prefix beside it; `served_range` and `served` are how both backends serve prefix + body."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypedDict, TypeVar

from mailcove.message import to_crlf
from mailcove.store.api import (
    NO_PREFIX,
    UID_MAX,
    AccountState,
    AppendResult,
    CopyResult,
    DeliveryTarget,
    FlagOp,
    FlagUpdate,
    ImportMessage,
    ImportResult,
    Mailbox,
    MailboxIndex,
    MessageMeta,
    MessagePrefix,
    OutboundEnvelope,
    QueueClaim,
    QueueItem,
    QueueOutcome,
    QueueState,
    StoredMessage,
    SubmitResult,
    Usage,
    check_lease_args,
)
from mailcove.store.changes import Change, ChangeBus
from mailcove.store.names import normalize_name
from mailcove.store.rules import accounts, leases, mailboxes, messages, queue, textindex
from mailcove.store.rules.statements import Body
from mailcove.store.sansio import Rule
from mailcove.store.spool import Spool

T = TypeVar("T")
P = TypeVar("P")

# What `_read_small` may be asked to read: metadata of this many messages, or this many bytes of
# one message. Measured on this machine: such a read takes 20-150 µs of SQLite work, and handing
# it to a reader thread and back cost more (imaptest's logout=0 load: +27% commands/s with reads
# run in place).
SMALL_META = 16
SMALL_READ_BYTES = 64 * 1024

Target = tuple[str, str, frozenset[str]]
Outbound = tuple[str, list[tuple[str, str | None, str]]]
Added = tuple[list[AppendResult], int | None]


def served_range(prefix_len: int, skip: int, start: int, length: int | None) -> tuple[int, int | None]:
    """Where bytes [start, start + length) of a message served as prefix + body[skip:] lie in the
    body: (offset, count), count None for "to the end". The caller takes the prefix's part itself."""
    offset = skip + max(start - prefix_len, 0)
    if length is None:
        return offset, None
    return offset, max(0, start + length - max(start, prefix_len))


def served(prefix: bytes | None, skip: int, body: bytes) -> bytes:
    """The whole message as served, from its stored parts."""
    if skip:
        body = body[skip:]
    return prefix + body if prefix else body


def in_memory_or_file(sources: Sequence[bytes | Spool]) -> list[bytes | Spool]:
    """Each message as bytes, or as a finished Spool whose bytes are in its file."""
    out: list[bytes | Spool] = []
    for source in sources:
        if isinstance(source, Spool):
            source.finish()
            if not source.inline:
                out.append(source)
                continue
            source = source.getvalue()
        out.append(bytes(source))
    return out


def check_import(items: Sequence[ImportMessage], uidvalidity: int | None, uidnext: int | None) -> None:
    """MailStore.import_messages' argument rules, before any work is done."""
    for value in (uidvalidity, uidnext):
        if value is not None and not 0 < value <= UID_MAX:
            raise ValueError(f"UIDVALIDITY/UIDNEXT out of range: {value}")
    last = 0
    for item in items:
        if item.uid is not None:
            if not last < item.uid <= UID_MAX:
                raise ValueError(f"import UIDs must be strictly increasing and below 2**32 (got {item.uid})")
            last = item.uid


def envelope_to_json(env: OutboundEnvelope) -> str:
    """The queue entry's envelope without its recipients (they are rows of their own)."""
    d = dataclasses.asdict(env)
    d.pop("recipients")
    return json.dumps(d, separators=(",", ":"))


class NewMessage(NamedTuple):
    """Where a new message goes: its local copies (falling back to INBOX for a missing mailbox,
    as deliveries do), its queue entry, its date and the prefix served in front of it."""

    targets: list[Target]
    when: float
    fallback: bool
    outbound: Outbound | None
    prefix: MessagePrefix


class StoreOptions(TypedDict, total=False):
    """What every backend is configured with ([store] in the settings)."""

    inline_max: int  # bodies up to this many bytes are stored inside the database
    min_free_bytes: int  # below this much free disk space on data_dir, adding messages fails
    default_quota_bytes: int  # a new account's quota; 0: unlimited
    default_quota_messages: int
    watch_changes: bool  # hear other processes' (nodes') commits; off for one-shot commands
    text_index: bool  # run the background full-text indexer (store/textindexer.py): the server's store


class Arrivals:
    """Mail arriving, as the background indexer (store/textindexer.py) reads it to rest
    meanwhile: the messages this process is adding (deliveries, submissions, APPENDs) now and
    how many it began, and how many times the change bus heard new messages, this process's or
    another's (with several workers the one that indexes need not be the one serving SMTP).
    Integers only, so the delivery path pays nothing."""

    __slots__ = ("begun", "heard", "in_flight")

    def __init__(self) -> None:
        self.in_flight = 0
        self.begun = 0
        self.heard = 0


class ArrivalsBus(ChangeBus):
    """The change bus, counting in `arrivals` each publication with new messages in it: the
    backends publish other processes' and nodes' commits through it as well as their own."""

    def __init__(self, arrivals: Arrivals) -> None:
        super().__init__()
        self._arrivals = arrivals
        self._newest = 0  # the highest change id heard: a commit may be published twice

    def publish(self, changes: list[Change]) -> None:
        if any(change.kind == "append" and change.id > self._newest for change in changes):
            self._arrivals.heard += 1
        self._newest = max(self._newest, *(change.id for change in changes))
        super().publish(changes)


class Frontend:
    def __init__(
        self,
        data_dir: Path,
        *,
        inline_max: int = 128 * 1024,
        min_free_bytes: int = 0,
        default_quota_bytes: int = 0,
        default_quota_messages: int = 0,
        watch_changes: bool = True,
        text_index: bool = False,
    ) -> None:
        from mailcove.store.textindexer import TextIndexer

        self.data_dir = Path(data_dir)
        self.arrivals = Arrivals()
        self.indexer = TextIndexer(self) if text_index else None
        self._inline_max = inline_max
        self._min_free = min_free_bytes
        self._default_quota = (default_quota_bytes, default_quota_messages)
        self._watch = watch_changes
        self.changes = ArrivalsBus(self.arrivals)

    @staticmethod
    def _running(part: P | None) -> P:
        """A part of the backend that start() makes (a connection pool, a thread), or an error."""
        if part is None:
            raise RuntimeError("store not started")
        return part

    def _start_indexer(self) -> None:
        """The backend's start() calls this last, once the store can be read and written."""
        if self.indexer is not None:
            self.indexer.start()

    async def _stop_indexer(self) -> None:
        """The backend's close() calls this first."""
        if self.indexer is not None:
            await self.indexer.stop()

    # --- the backend's part ------------------------------------------------------------------

    async def _write(self, rule: Callable[..., Rule[T]], *args: Any) -> T:
        """Run the rule `rule(*args)` in one write transaction; returns once it is durable."""
        raise NotImplementedError

    async def _read(self, rule: Callable[..., Rule[T]], *args: Any) -> T:
        """Run the reading rule `rule(*args)`."""
        raise NotImplementedError

    async def catch_up(self) -> None:
        """Hand the change bus now what other processes committed and it has not heard yet
        (IMAP NOOP and CHECK, whose clients poll for what other sessions did). A backend whose
        notifications arrive by themselves (PostgreSQL's LISTEN) has nothing to do."""

    async def _read_small(self, rule: Callable[..., Rule[T]], *args: Any) -> T:
        """Run a reading rule that touches a few rows and at most SMALL_READ_BYTES of message
        text (the verbs below say which). A backend whose reads are a hop to another thread may
        run these where the caller is instead (SQLite: the hop cost more than the read)."""
        return await self._read(rule, *args)

    async def _add_bytes(self, data: bytes, m: NewMessage) -> Added:
        """Store a message held in memory."""
        raise NotImplementedError

    async def _add_file(self, spool: Spool, m: NewMessage) -> Added:
        """Store a message spooled to a file (the backend adopts or uploads it as it is)."""
        raise NotImplementedError

    async def _place_bodies(self, sources: Sequence[bytes | Spool], scan: bool) -> list[tuple[int, Body]]:
        """(size, Body) of each message for the rules' AddBody (imports, restores): stored ahead
        of the write where the backend keeps large bodies apart (files, uploaded chunks), carried
        into it otherwise; with `scan`, with its MessageInfo. All or nothing."""
        raise NotImplementedError

    async def _drop_unreferenced(self, bodies: Sequence[tuple[int, Body]]) -> None:
        """After the write that used them, or its failure: remove what _place_bodies stored
        ahead that no row references (a skipped import item, a failed write)."""
        raise NotImplementedError

    # --- adding messages ---------------------------------------------------------------------

    async def _add(
        self,
        source: bytes | Spool,
        targets: list[Target],
        internaldate: float | None,
        *,
        fallback_to_inbox: bool,
        outbound: Outbound | None = None,
        prefix: MessagePrefix = NO_PREFIX,
    ) -> Added:
        """Add one message, counted in `arrivals` meanwhile (the background indexer gives way)."""
        self.arrivals.in_flight += 1
        self.arrivals.begun += 1
        try:
            return await self._add_now(source, targets, internaldate, fallback_to_inbox, outbound, prefix)
        finally:
            self.arrivals.in_flight -= 1

    async def _add_now(
        self,
        source: bytes | Spool,
        targets: list[Target],
        internaldate: float | None,
        fallback_to_inbox: bool,
        outbound: Outbound | None,
        prefix: MessagePrefix,
    ) -> Added:
        when = time.time() if internaldate is None else internaldate
        if isinstance(source, Spool):
            source.finish()
            if not source.inline:
                if not 0 <= prefix.skip <= source.size:
                    source.discard()
                    raise ValueError(f"prefix skips {prefix.skip} bytes of a {source.size}-byte body")
                return await self._add_file(source, NewMessage(targets, when, fallback_to_inbox, outbound, prefix))
            source = source.getvalue()
        if not 0 <= prefix.skip <= len(source):
            raise ValueError(f"prefix skips {prefix.skip} bytes of a {len(source)}-byte body")
        return await self._add_bytes(bytes(source), NewMessage(targets, when, fallback_to_inbox, outbound, prefix))

    async def deliver(
        self, source: bytes | Spool, targets: Sequence[DeliveryTarget], *, internaldate: float | None = None
    ) -> list[AppendResult]:
        if not targets:
            return []
        return (await self.submit(source, targets, None, internaldate=internaldate)).local

    async def submit(
        self,
        source: bytes | Spool,
        targets: Sequence[DeliveryTarget],
        outbound: OutboundEnvelope | None,
        *,
        internaldate: float | None = None,
        prefix: MessagePrefix | None = None,
    ) -> SubmitResult:
        if outbound is not None and not outbound.recipients:
            outbound = None
        if not targets and outbound is None:
            raise ValueError("submit needs a local target or a remote recipient")
        tlist = [(t.user, normalize_name(t.mailbox), frozenset(t.flags)) for t in targets]
        out = None
        if outbound is not None:
            out = (
                envelope_to_json(outbound),
                [(r.address, r.orcpt, ",".join(r.notify)) for r in outbound.recipients],
            )
        results, queue_id = await self._add(
            source, tlist, internaldate, fallback_to_inbox=True, outbound=out, prefix=prefix or NO_PREFIX
        )
        return SubmitResult(results, queue_id)

    async def append(
        self,
        user: str,
        mailbox: str,
        source: bytes | Spool,
        *,
        flags: Iterable[str] = (),
        internaldate: float | None = None,
    ) -> AppendResult:
        if isinstance(source, bytes | bytearray | memoryview):
            source = to_crlf(bytes(source))
        (result,), _ = await self._add(
            source, [(user, normalize_name(mailbox), frozenset(flags))], internaldate, fallback_to_inbox=False
        )
        return result

    async def import_messages(
        self,
        user: str,
        mailbox: str,
        items: Sequence[ImportMessage],
        *,
        uidvalidity: int | None = None,
        uidnext: int | None = None,
    ) -> ImportResult:
        check_import(items, uidvalidity, uidnext)
        name = normalize_name(mailbox)
        now = time.time()
        bodies = await self._place_bodies([item.source for item in items], scan=True)
        rows = [
            (item.uid, size, body, frozenset(item.flags), now if item.internaldate is None else item.internaldate,
             item.pop3_uidl)
            for item, (size, body) in zip(items, bodies, strict=True)
        ]
        try:
            return await self._write(messages.import_messages, user, name, rows, uidvalidity, uidnext)
        finally:
            await self._drop_unreferenced(bodies)

    # --- accounts ----------------------------------------------------------------------------

    async def create_account(self, user: str) -> None:
        await self._write(mailboxes.create_account, user, *self._default_quota, time.time())

    async def delete_account(self, user: str) -> None:
        await self._write(mailboxes.delete_account, user)

    async def account_exists(self, user: str) -> bool:
        return await self._read(accounts.account_exists, user)

    async def list_accounts(self) -> list[str]:
        return await self._read(accounts.list_accounts)

    async def set_quota(self, user: str, max_bytes: int, max_messages: int) -> None:
        await self._write(accounts.set_quota, user, max_bytes, max_messages)

    async def usage(self, user: str) -> Usage:
        return await self._read_small(accounts.usage, user)

    # --- mailboxes ---------------------------------------------------------------------------

    async def list_mailboxes(self, user: str) -> list[Mailbox]:
        return await self._read(mailboxes.list_mailboxes, user)

    async def get_mailbox(self, user: str, name: str) -> Mailbox:
        return await self._read_small(mailboxes.get_mailbox, user, name)

    async def mailbox_by_id(self, mailbox_id: int) -> Mailbox:
        return await self._read_small(mailboxes.mailbox_by_id, mailbox_id)

    async def create_mailbox(self, user: str, name: str, special_use: str | None = None) -> Mailbox:
        await self._write(mailboxes.create_mailbox, user, name, special_use, time.time())
        return await self.get_mailbox(user, name)

    async def delete_mailbox(self, user: str, name: str) -> None:
        await self._write(mailboxes.delete_mailbox, user, name)

    async def rename_mailbox(self, user: str, old: str, new: str) -> None:
        await self._write(mailboxes.rename_mailbox, user, old, new, time.time())

    async def set_subscribed(self, user: str, name: str, subscribed: bool) -> None:
        await self._write(mailboxes.set_subscribed, user, name, subscribed, time.time())

    async def expunged_since(self, mailbox_id: int, modseq: int) -> list[int]:
        return await self._read(mailboxes.expunged_since, mailbox_id, modseq)

    # --- the outbound queue ------------------------------------------------------------------

    async def queue_list(self) -> list[QueueItem]:
        return await self._read(queue.queue_list)

    async def queue_get(self, queue_id: int) -> QueueItem:
        return await self._read(queue.queue_get, queue_id)

    async def queue_read(self, queue_id: int) -> bytes:
        return await self._read(queue.queue_read, queue_id)

    async def queue_delete(self, queue_id: int) -> None:
        await self._write(queue.queue_delete, queue_id)

    async def queue_size(self) -> int:
        return await self._read(queue.queue_size)

    async def queue_claim(self, now: float, lease_seconds: float, limit: int) -> list[QueueClaim]:
        return await self._write(queue.queue_claim, now, lease_seconds, limit, secrets.token_hex(8))

    async def queue_record(self, outcomes: Sequence[QueueOutcome]) -> list[int]:
        if not outcomes:
            return []
        rows = [(o.queue_id, o.idx, o.lease, o.status, o.next_attempt, o.error, o.warned) for o in outcomes]
        return await self._write(queue.queue_record, rows)

    async def queue_retry(self, queue_id: int | None, now: float) -> int:
        return await self._write(queue.queue_retry, queue_id, now)

    # --- reading messages --------------------------------------------------------------------

    async def index(self, mailbox_id: int) -> MailboxIndex:
        return await self._read(messages.index, mailbox_id)

    async def pop3_uidls(self, mailbox_id: int, min_uid: int = 1) -> dict[int, str]:
        return await self._read(messages.pop3_uidls, mailbox_id, min_uid)

    async def fetch_meta(self, mailbox_id: int, uids: Sequence[int]) -> list[MessageMeta]:
        if len(uids) <= SMALL_META:
            return await self._read_small(messages.fetch_meta, mailbox_id, uids)
        return await self._read(messages.fetch_meta, mailbox_id, uids)

    async def read_message(self, mailbox_id: int, uid: int, start: int = 0, length: int | None = None) -> bytes:
        """Bytes [start, start+length) of the message as served; large FETCH output reads in slices."""
        if length is not None and length <= SMALL_READ_BYTES:
            return await self._read_small(messages.read_message, mailbox_id, uid, start, length)
        return await self._read(messages.read_message, mailbox_id, uid, start, length)

    async def read_messages(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, bytes]:
        return await self._read(messages.read_messages, mailbox_id, uids)

    async def message_path(self, mailbox_id: int, uid: int) -> Path | None:
        return await self._read(messages.message_path, mailbox_id, uid)

    # --- the full-text index (rules/textindex.py) --------------------------------------------

    async def text_candidates(self, mailbox_id: int, needle: str) -> set[int] | None:
        return await self._read(textindex.candidates, mailbox_id, needle)

    async def index_pending(self, after: int = 0, limit: int = textindex.BATCH) -> tuple[int, int]:
        """Index up to `limit` bodies waiting, ids above `after`: (how many were read, the last
        id read; 0 when none was waiting)."""
        bodies = await self._read(textindex.unindexed, after, limit)
        if not bodies:
            return 0, 0
        rows = await asyncio.to_thread(textindex.texts, bodies)
        await self._write(textindex.index_texts, rows)
        return len(bodies), bodies[-1][0]

    async def index_progress(self) -> tuple[int, int]:
        return await self._read(textindex.progress)

    async def reset_index(self, user: str) -> int:
        return await self._write(textindex.reset, user)

    # --- changing messages -------------------------------------------------------------------

    async def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        op: FlagOp,
        flags: Iterable[str],
        *,
        unchanged_since: int | None = None,
    ) -> FlagUpdate:
        if op not in ("+", "-", "="):
            raise ValueError(f"bad flag operation {op!r}")
        return await self._write(messages.store_flags, mailbox_id, list(uids), op, frozenset(flags), unchanged_since)

    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        return await self._write(messages.expunge, mailbox_id, None if uids is None else list(uids))

    async def copy(self, mailbox_id: int, uids: Sequence[int], dest_mailbox_id: int) -> CopyResult:
        return await self._write(messages.copy, mailbox_id, list(uids), dest_mailbox_id, False)

    async def move(self, mailbox_id: int, uids: Sequence[int], dest_mailbox_id: int) -> CopyResult:
        return await self._write(messages.copy, mailbox_id, list(uids), dest_mailbox_id, True)

    # --- copying to another backend (mailcove db copy) ---------------------------------------

    async def export_account(self, user: str) -> AccountState:
        return await self._read(accounts.export_account, user)

    async def restore_account(self, state: AccountState) -> None:
        await self._write(accounts.restore_account, state)

    async def export_messages(self, mailbox_id: int, after_uid: int, limit: int) -> list[StoredMessage]:
        return await self._read(messages.export_messages, mailbox_id, after_uid, limit)

    async def restore_messages(self, user: str, mailbox: str, stored: Sequence[StoredMessage]) -> None:
        if not stored:
            return
        name = normalize_name(mailbox)
        bodies = await self._place_bodies([m.data for m in stored], scan=True)
        rows = [
            (m.uid, frozenset(m.flags), m.modseq, m.internaldate, size, body, m.pop3_uidl)
            for m, (size, body) in zip(stored, bodies, strict=True)
        ]
        try:
            await self._write(messages.restore_messages, user, name, rows)
        finally:
            await self._drop_unreferenced(bodies)

    async def export_queue(self, after_id: int, limit: int) -> list[QueueState]:
        return await self._read(queue.export_queue, after_id, limit)

    async def restore_queue(self, entry: QueueState) -> int:
        bodies = await self._place_bodies([entry.data], scan=False)
        try:
            return await self._write(queue.restore_queue, entry, envelope_to_json(entry.item.envelope), bodies[0][1])
        finally:
            await self._drop_unreferenced(bodies)

    # --- leases ------------------------------------------------------------------------------

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        check_lease_args(name, owner, ttl)
        return await self._write(leases.acquire_lease, name, owner, ttl)

    async def renew_lease(self, name: str, owner: str, ttl: float) -> bool:
        check_lease_args(name, owner, ttl)
        return await self._write(leases.renew_lease, name, owner, ttl)

    async def release_lease(self, name: str, owner: str) -> None:
        await self._write(leases.release_lease, name, owner)
