"""The MailStore protocol: everything protocol code may ask of storage.

Modelled on Dovecot's lib-storage verbs, reduced to what IMAP, POP3, SMTP delivery and the admin
tools need. Accounts are named by their canonical address key ("a@hamap.local"); mailboxes by
their full hierarchical name with "/" as the separator, INBOX matched case-insensitively.

Every write returns only once it is durable. Both backends (sqlite/, postgres/) implement it with
the same rules (rules/, run by each backend's driver on its own statements) and pass the same
contract suite in tests/store/.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from mailcove.core.errors import StoreError

if TYPE_CHECKING:
    from mailcove.message import MessageInfo
    from mailcove.store.changes import ChangeBus
    from mailcove.store.spool import Spool

SEPARATOR = "/"
DEFAULT_MAILBOXES: tuple[tuple[str, str | None], ...] = (
    ("INBOX", None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)
UID_MAX = 2**32 - 1  # UIDs, UIDVALIDITY and UIDNEXT are 32-bit in IMAP (RFC 9051 2.3.1.1)
SYSTEM_FLAGS = frozenset({"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"})
FlagOp = Literal["+", "-", "="]


@dataclass(frozen=True, slots=True)
class Mailbox:
    id: int
    user: str
    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    special_use: str | None
    subscribed: bool
    noselect: bool
    messages: int
    unseen: int
    size: int


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One row of a mailbox's UID/flags map."""

    uid: int
    flags: frozenset[str]
    modseq: int


class MailboxIndex:
    """A mailbox's whole UID/flags/modseq map, in UID order, held as columns.

    Columns rather than one object per message: building 100,000 small objects costs more than
    reading the rows (docs/architecture.md), and IMAP wants the UID column as an array anyway
    for its sequence-number map."""

    __slots__ = ("flags", "modseqs", "uids")

    def __init__(self, uids: array[int], flags: list[frozenset[str]], modseqs: array[int]) -> None:
        self.uids = uids
        self.flags = flags
        self.modseqs = modseqs

    def __len__(self) -> int:
        return len(self.uids)

    def __iter__(self) -> Iterator[IndexEntry]:
        for uid, flags, modseq in zip(self.uids, self.flags, self.modseqs, strict=True):
            yield IndexEntry(uid, flags, modseq)

    def __getitem__(self, i: int) -> IndexEntry:
        return IndexEntry(self.uids[i], self.flags[i], self.modseqs[i])


@dataclass(frozen=True, slots=True)
class MessageMeta:
    uid: int
    flags: frozenset[str]
    modseq: int
    internaldate: float
    size: int
    info: MessageInfo


@dataclass(frozen=True, slots=True)
class AppendResult:
    user: str
    mailbox_id: int
    mailbox: str
    uidvalidity: int
    uid: int
    modseq: int


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    """Where one recipient's copy goes. A missing mailbox falls back to INBOX on delivery."""

    user: str
    mailbox: str = "INBOX"
    flags: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class MessagePrefix:
    """Header lines served in front of a body that is stored exactly as received (mox's
    MsgPrefix). The server's own fields (Return-Path, Received, Authentication-Results) live here,
    not in the body, so adding them never copies a 50 MB message and no module has to find in the
    bytes what another one wrote there.

    A local copy reads as `local` followed by the body from byte `skip` on; the outbound queue
    entry as `queued` followed by the same bytes. `skip` is 0 unless a filter rewrote the
    message's own header: then both prefixes end with the new header block, which stands for the
    first `skip` bytes of the body (the header as received), and the body is still not touched."""

    local: bytes = b""  # Return-Path, then the trace: only the final delivery adds Return-Path
    queued: bytes = b""  # the trace alone: the queue relays what it is given
    skip: int = 0


NO_PREFIX = MessagePrefix()


@dataclass(frozen=True, slots=True)
class OutboundRecipient:
    """One remote recipient with its RFC 3461 DSN parameters."""

    address: str
    orcpt: str | None = None
    notify: tuple[str, ...] = ()  # e.g. ("FAILURE", "DELAY"), ("NEVER",); () = the default


@dataclass(frozen=True, slots=True)
class OutboundEnvelope:
    """What the outbound queue needs besides the bytes: the SMTP envelope and its parameters."""

    sender: str  # the reverse-path; "" is the null sender
    recipients: tuple[OutboundRecipient, ...]
    envid: str | None = None
    ret: str | None = None  # "FULL" | "HDRS"
    body: str | None = None  # "7BIT" | "8BITMIME" | "BINARYMIME"
    smtputf8: bool = False
    auth_user: str | None = None  # who submitted it, for logs and sending limits
    client: str | None = None  # the submitting client's address, for logs


QueueStatus = Literal["queued", "sent", "failed", "held"]


@dataclass(frozen=True, slots=True)
class QueuedRecipient:
    address: str
    orcpt: str | None
    notify: tuple[str, ...]
    status: QueueStatus
    attempts: int
    next_attempt: float
    last_error: str | None


@dataclass(frozen=True, slots=True)
class QueueItem:
    id: int
    created: float
    size: int
    envelope: OutboundEnvelope
    recipients: tuple[QueuedRecipient, ...]


@dataclass(frozen=True, slots=True)
class QueueClaim:
    """One recipient a queue runner leased for a delivery attempt. Until `lease` is recorded
    with queue_record (or the lease time passes) no other runner gets it."""

    queue_id: int
    idx: int
    address: str
    orcpt: str | None
    notify: tuple[str, ...]
    attempts: int
    warned: bool
    lease: str
    created: float
    envelope: OutboundEnvelope  # the entry's envelope; its `recipients` is empty


@dataclass(frozen=True, slots=True)
class QueueOutcome:
    """The result of one attempt for one claimed recipient."""

    queue_id: int
    idx: int
    lease: str
    status: QueueStatus  # "queued": try again at next_attempt; "sent" / "failed": done
    next_attempt: float = 0.0
    error: str | None = None
    warned: bool = False  # the delay warning went out


@dataclass(frozen=True, slots=True)
class SubmitResult:
    local: list[AppendResult]
    queue_id: int | None


@dataclass(frozen=True, slots=True)
class FlagUpdate:
    changed: list[IndexEntry]
    # UIDs that failed an UNCHANGEDSINCE test (RFC 7162 MODIFIED response code).
    modified: list[int]


@dataclass(frozen=True, slots=True)
class CopyResult:
    uidvalidity: int
    pairs: list[tuple[int, int]]  # (source uid, destination uid)


@dataclass(frozen=True, slots=True)
class ImportMessage:
    """One message for MailStore.import_messages.

    `source` is stored exactly as given: unlike append, no newline conversion (the importer knows
    the source's line endings and converts, so that export can convert back)."""

    source: bytes | Spool
    uid: int | None = None  # the old server's UID; None: the next free UID
    flags: frozenset[str] = frozenset()
    internaldate: float | None = None  # None: now
    # The UIDL the old POP3 server gave the message (importers/dovecot_uidl.py): POP3 serves it
    # instead of mailcove's own for as long as the message is in this mailbox.
    pop3_uidl: str | None = None


@dataclass(frozen=True, slots=True)
class ImportResult:
    mailbox_id: int
    uidvalidity: int
    uidnext: int  # the mailbox's UIDNEXT after this call
    added: list[int]  # UIDs stored by this call, in item order
    skipped: list[int]  # given UIDs below the mailbox's UIDNEXT: already there (or expunged since)


class UidValidityConflict(StoreError):
    """import_messages was asked to keep a UIDVALIDITY that a non-empty mailbox does not have."""

    code = 550
    enhanced = "5.2.0"


@dataclass(frozen=True, slots=True)
class Usage:
    bytes: int
    messages: int
    max_bytes: int  # 0 = unlimited
    max_messages: int  # 0 = unlimited


# --- whole-installation copy between backends (`mailcove db copy`) ---------------------------


@dataclass(frozen=True, slots=True)
class MailboxState:
    """A mailbox as a client's cache knows it: restoring it elsewhere must not make a client
    resync (same UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, and the expunge records QRESYNC's
    VANISHED answers from)."""

    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    special_use: str | None
    subscribed: bool
    noselect: bool
    expunged: tuple[tuple[int, int], ...] = ()  # (uid, modseq of its removal), uid order


@dataclass(frozen=True, slots=True)
class AccountState:
    user: str
    quota_bytes: int
    quota_messages: int
    mailboxes: tuple[MailboxState, ...]


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message exactly as stored: restored with the same UID, flags, MODSEQ and date."""

    uid: int
    flags: frozenset[str]
    modseq: int
    internaldate: float
    data: bytes
    pop3_uidl: str | None = None


@dataclass(frozen=True, slots=True)
class QueueState:
    """One outbound queue entry with its recipients' delivery state and its bytes."""

    item: QueueItem
    warned: frozenset[int]  # recipient indexes whose delay warning went out
    data: bytes


LEASE_MAX_NAME = 512
LEASE_MAX_TTL = 86400.0


def check_lease_args(name: str, owner: str, ttl: float) -> None:
    """The limits every backend applies to acquire_lease/renew_lease (ValueError otherwise)."""
    if not name or not owner or len(name) > LEASE_MAX_NAME or len(owner) > LEASE_MAX_NAME:
        raise ValueError(f"lease name and owner must be 1-{LEASE_MAX_NAME} characters")
    if not 0 < ttl <= LEASE_MAX_TTL:
        raise ValueError(f"lease ttl must be in (0, {LEASE_MAX_TTL:.0f}] seconds")


class MailStore(Protocol):
    changes: ChangeBus

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def collect_orphans(self) -> int:
        """Remove stored bodies nothing references (a crash between body and commit leaves
        them). The server calls it once at start, before serving."""
    async def backup(self, dest: Path) -> list[str]:
        """Write a copy of the whole store, consistent as of one moment, into the new directory
        `dest`, while deliveries go on; return the paths written, relative to `dest`. SQLite:
        mail.db (online backup API) plus the blob files it references. A backend whose data
        lives elsewhere writes what restores it (PostgreSQL: a pg_dump archive) and says so in
        the names. `mailcove backup` adds checksums, the directory, config and keys."""

    # --- spooling: large messages are streamed to disk before they are committed -------------
    def new_spool(self, *, normalize_newlines: bool = False) -> Spool: ...

    # --- accounts ----------------------------------------------------------------------------
    async def create_account(self, user: str) -> None:
        """Create the account and its default mailboxes; idempotent."""
    async def delete_account(self, user: str) -> None: ...
    async def account_exists(self, user: str) -> bool: ...
    async def list_accounts(self) -> list[str]: ...
    async def set_quota(self, user: str, max_bytes: int, max_messages: int) -> None: ...
    async def usage(self, user: str) -> Usage: ...

    # --- mailboxes ---------------------------------------------------------------------------
    async def list_mailboxes(self, user: str) -> list[Mailbox]: ...
    async def get_mailbox(self, user: str, name: str) -> Mailbox: ...
    async def create_mailbox(self, user: str, name: str, special_use: str | None = None) -> Mailbox: ...
    async def delete_mailbox(self, user: str, name: str) -> None: ...
    async def rename_mailbox(self, user: str, old: str, new: str) -> None: ...
    async def set_subscribed(self, user: str, name: str, subscribed: bool) -> None: ...

    # --- adding messages ---------------------------------------------------------------------
    async def deliver(
        self, source: bytes | Spool, targets: Sequence[DeliveryTarget], *, internaldate: float | None = None
    ) -> list[AppendResult]:
        """Store one message for several recipients: one blob, one row each, one commit.
        All or nothing: QuotaExceeded / DiskFull for any target fails the whole delivery."""
    async def submit(
        self,
        source: bytes | Spool,
        targets: Sequence[DeliveryTarget],
        outbound: OutboundEnvelope | None,
        *,
        internaldate: float | None = None,
        prefix: MessagePrefix | None = None,
    ) -> SubmitResult:
        """One SMTP transaction's outcome in one commit: the local copies and, for the remote
        recipients, one durable queue entry sharing the same blob. All or nothing.

        `source` is stored exactly as given; `prefix` is served in front of it (the local copies'
        size, quota charge and MessageInfo cover prefix and body, as IMAP and POP3 serve them)."""
    async def append(
        self,
        user: str,
        mailbox: str,
        source: bytes | Spool,
        *,
        flags: Iterable[str] = (),
        internaldate: float | None = None,
    ) -> AppendResult:
        """IMAP APPEND / import: bare LF becomes CRLF before storing (see message.newlines)."""

    async def import_messages(
        self,
        user: str,
        mailbox: str,
        items: Sequence[ImportMessage],
        *,
        uidvalidity: int | None = None,
        uidnext: int | None = None,
    ) -> ImportResult:
        """Mail import (mbox/Maildir from another server) keeping the old UIDs, in one commit.

        - The mailbox must exist (MailboxNotFound otherwise, also for a \\Noselect name).
        - `uidvalidity`: the old server's UIDVALIDITY (1..2**32-1). If the mailbox has another
          one, it is replaced when the mailbox holds no message (UIDs then restart: UIDNEXT 1,
          its expunge record is cleared); a non-empty mailbox raises UidValidityConflict and
          nothing is stored. Later new UIDVALIDITY values of the account stay above it.
        - Given UIDs must be strictly increasing in item order and in 1..2**32-1 (ValueError,
          nothing stored). An item whose UID is below the mailbox's UIDNEXT is skipped and
          listed in `skipped`: it is already there (a second import of the same source), or it
          was expunged since and IMAP never reuses a UID. Other items get exactly their UID.
          An item without a UID gets the next free one. UIDNEXT ends above every stored UID.
        - `uidnext`: the old server's UIDNEXT; afterwards UIDNEXT is at least this. Pass it with
          the last batch only, so an interrupted import can simply be run again.
        - Bytes are stored verbatim; flags as given (system flags and keywords); internaldate
          None means now. All items share one new MODSEQ.
        - All or nothing, like deliver: QuotaExceeded / DiskFull store nothing. One change
          notification ("append") for the added UIDs. Callers bound a call's total size
          (the importer sends batches of a few hundred messages / a few MB)."""

    # --- the outbound queue ------------------------------------------------------------------
    async def queue_list(self) -> list[QueueItem]: ...
    async def queue_get(self, queue_id: int) -> QueueItem: ...
    async def queue_read(self, queue_id: int) -> bytes:
        """The entry's message as it is relayed: its prefix (`MessagePrefix.queued`), then the body."""
    async def queue_delete(self, queue_id: int) -> None: ...
    async def queue_size(self) -> int:
        """Entries with at least one recipient still queued."""
    async def queue_claim(self, now: float, lease_seconds: float, limit: int) -> list[QueueClaim]:
        """Lease up to `limit` queued recipients due at `now` (oldest first): their next attempt
        moves to now + lease_seconds, so a runner killed mid-delivery leaves them due again
        later (at-least-once), and a second runner never claims them meanwhile."""
    async def queue_record(self, outcomes: Sequence[QueueOutcome]) -> list[int]:
        """Record attempts in one commit. An outcome whose lease is no longer current (it expired
        and another runner claimed the recipient) is ignored. Entries left with no queued
        recipient are removed; their ids are returned."""
    async def queue_retry(self, queue_id: int | None, now: float) -> int:
        """Make the queued recipients of one entry (None: all) due at `now`; returns how many."""

    # --- reading -----------------------------------------------------------------------------
    async def index(self, mailbox_id: int) -> MailboxIndex: ...
    async def fetch_meta(self, mailbox_id: int, uids: Sequence[int]) -> list[MessageMeta]: ...
    async def read_message(self, mailbox_id: int, uid: int, start: int = 0, length: int | None = None) -> bytes: ...
    async def read_messages(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, bytes]:
        """Whole messages in one call (FETCH BODY[] of many, POP3): one hop to a reader instead
        of one per message. Missing UIDs are left out. Callers bound the total size."""
    async def pop3_uidls(self, mailbox_id: int, min_uid: int = 1) -> dict[int, str]:
        """The UIDLs kept from an old POP3 server (ImportMessage.pop3_uidl) of the messages with a
        UID of at least `min_uid`; messages without one are left out."""
    async def message_path(self, mailbox_id: int, uid: int) -> Path | None:
        """Only for diagnostics; None when the body is stored inline. The file holds the body
        as received, without the message's prefix."""

    # --- the full-text index for SEARCH BODY/TEXT (store/rules/textindex.py) -----------------
    async def text_candidates(self, mailbox_id: int, needle: str) -> set[int] | None:
        """The UIDs of the mailbox's messages that may contain `needle` in their text (SEARCH
        BODY/TEXT's case-folded substring), unindexed messages included: every message that
        contains it is among them. None: the index cannot narrow this needle."""
    async def index_pending(self, after: int = 0, limit: int = 100) -> tuple[int, int]:
        """Index up to `limit` bodies waiting (ids above `after`): (how many read, last id read)."""
    async def index_progress(self) -> tuple[int, int]:
        """(bodies waiting to be indexed, bodies)."""
    async def reset_index(self, user: str) -> int:
        """Unindex the user's bodies, to be indexed again; returns how many."""

    # --- changing ----------------------------------------------------------------------------
    async def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        op: FlagOp,
        flags: Iterable[str],
        *,
        unchanged_since: int | None = None,
    ) -> FlagUpdate: ...
    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        """Remove `uids`, or every message flagged \\Deleted when None. Returns removed UIDs."""
    async def copy(self, mailbox_id: int, uids: Sequence[int], dest_mailbox_id: int) -> CopyResult: ...
    async def move(self, mailbox_id: int, uids: Sequence[int], dest_mailbox_id: int) -> CopyResult: ...
    async def expunged_since(self, mailbox_id: int, modseq: int) -> list[int]: ...
    async def catch_up(self) -> None:
        """Publish on `changes` now what other processes committed and it has not carried yet."""

    # --- copying a whole installation to another backend (`mailcove db copy`) ---------------
    # Export reads what a client's cache and the queue depend on; restore writes it back
    # verbatim into an empty target. Nothing here publishes changes or applies quotas: the
    # target is not serving yet.
    async def export_account(self, user: str) -> AccountState:
        """The account's quota and every mailbox's state (AccountNotFound if none)."""
    async def export_messages(self, mailbox_id: int, after_uid: int, limit: int) -> list[StoredMessage]:
        """Up to `limit` messages with UID > after_uid, in UID order: page through a mailbox
        with bounded memory."""
    async def restore_account(self, state: AccountState) -> None:
        """Create the account with exactly these mailboxes (no default ones) and expunge
        records. StoreError if the account exists. New mailboxes created later get a
        UIDVALIDITY above every restored one."""
    async def restore_messages(self, user: str, mailbox: str, messages: Sequence[StoredMessage]) -> None:
        """Add messages with their UID, flags, MODSEQ and internal date unchanged, in one commit.
        Each UID must be below the mailbox's UIDNEXT and not present, each MODSEQ at most its
        HIGHESTMODSEQ (ValueError otherwise, nothing stored). Counters and usage follow; the
        next new message gets UIDNEXT and a MODSEQ above HIGHESTMODSEQ."""
    async def export_queue(self, after_id: int, limit: int) -> list[QueueState]:
        """Up to `limit` queue entries with id > after_id, in id order, with their bytes."""
    async def restore_queue(self, entry: QueueState) -> int:
        """Add one queue entry with its recipients' status, attempts, next attempt, last error
        and warning state (leases are not kept: a claimed recipient is simply due). Returns
        its new id (ids are not kept)."""

    # --- leases: named locks shared by every process and node on this store ------------------
    # A lease is held by one owner until it is released or its time-to-live passes without a
    # renewal, so a process killed while holding one frees it by expiry (POP3's maildrop lock,
    # RFC 1939 section 8, across nodes). Expiry is judged by the store's clock (the database
    # server's on PostgreSQL), never by the callers', so nodes with skewed clocks agree.
    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take `name` for `owner` for `ttl` seconds. True if it was free, expired, or already
        held by `owner` (then it is renewed); False if another owner holds it."""
    async def renew_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Extend `owner`'s lease to now + ttl. False if `owner` no longer holds it (it expired
        and someone else took it, or it was released): the caller has lost the lock."""
    async def release_lease(self, name: str, owner: str) -> None:
        """Give the lease up; a no-op unless `owner` holds it."""
