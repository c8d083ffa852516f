"""The store's statements: every step a rule (store/rules/) asks of the database, typed.

Each backend runs every one of these in its own dialect (sqlite/statements.py,
postgres/statements.py); tests/store/test_statement_tables.py checks none is missing. A
statement's docstring says what it returns ("-> ..."); a statement without one returns nothing.

Locking: "locked" rows are locked until the transaction ends on a backend that locks rows
(PostgreSQL, `FOR UPDATE`), in the lock order every rule keeps: accounts, then mailboxes by
ascending id, then blobs. On SQLite the writer holds the database's one write lock for the
whole batch, so the same statements lock nothing.

Message bodies: `Body` is a backend's own description of where a body's bytes are (SQLite:
inline bytes or a blob file; PostgreSQL: inline bytes or a body uploaded ahead as chunk rows);
rules pass it through to `AddBody` without looking inside. Flags travel as frozensets: each
backend maps them to its storage (SQLite: flag-set ids; PostgreSQL: one text per row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from mailcove.store.api import QueueState
from mailcove.store.sansio import Statement, statements_of

# A body to store, as the backend's store.py prepared it (see the module docstring).
Body = Any


class AccountRow(NamedTuple):
    id: int
    name: str
    quota_bytes: int
    quota_messages: int
    used_bytes: int
    used_messages: int


class MailboxRow(NamedTuple):
    id: int
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    noselect: bool
    messages: int


class MailboxLock(NamedTuple):
    uidvalidity: int
    highestmodseq: int
    noselect: bool


class Owner(NamedTuple):
    account_id: int
    user: str
    highestmodseq: int


class MessageRow(NamedTuple):
    uid: int
    blob_id: int
    flags: frozenset[str]
    size: int


# --- the driver's own ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Announce(Statement):
    """Publish this change once the transaction has committed (kind: append, flags, expunge,
    mailbox; mailbox_id 0: the account's mailbox list)."""

    user: str
    mailbox_id: int
    kind: str
    uids: Sequence[int] = ()
    modseq: int = 0


@dataclass(frozen=True, slots=True)
class SpaceLow(Statement):
    """-> True when free disk space is below the configured floor (checked once per batch or
    transaction by the driver)"""


# --- accounts --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InsertAccount(Statement):
    """-> the new account's id, None if the name exists"""

    user: str
    quota_bytes: int
    quota_messages: int
    last_uidvalidity: int = 0


@dataclass(frozen=True, slots=True)
class LockAccount(Statement):
    """-> AccountRow, locked, or None"""

    user: str


@dataclass(frozen=True, slots=True)
class LockAccountOf(Statement):
    """-> AccountRow of the account owning the mailbox, locked, or None"""

    mailbox_id: int


@dataclass(frozen=True, slots=True)
class MailboxAccount(Statement):
    """-> the id of the account owning the mailbox, None if there is no such mailbox"""

    mailbox_id: int


@dataclass(frozen=True, slots=True)
class DeleteAccount(Statement):
    """The account's row, its mailboxes' rows and their expunge records (their messages are
    gone already)."""

    account_id: int
    mailbox_ids: Sequence[int]


@dataclass(frozen=True, slots=True)
class SetQuota(Statement):
    """-> how many accounts were changed (0 or 1)"""

    user: str
    max_bytes: int
    max_messages: int


@dataclass(frozen=True, slots=True)
class ChargeAccount(Statement):
    """Add to the account's usage (negative: free)."""

    account_id: int
    messages: int
    bytes: int


@dataclass(frozen=True, slots=True)
class NextUidvalidity(Statement):
    """-> a new UIDVALIDITY for one of the account's mailboxes: `now`, or one above the last
    handed out if that is higher (so a clock set back, or another node's, never repeats one);
    remembered as the last"""

    account_id: int
    now: int


@dataclass(frozen=True, slots=True)
class RaiseLastUidvalidity(Statement):
    """The account's last UIDVALIDITY becomes at least `value`."""

    account_id: int
    value: int


@dataclass(frozen=True, slots=True)
class AccountExists(Statement):
    """-> bool"""

    user: str


@dataclass(frozen=True, slots=True)
class AccountNames(Statement):
    """-> [name] in name order"""


@dataclass(frozen=True, slots=True)
class AccountUsage(Statement):
    """-> api.Usage, or None if there is no such account"""

    user: str


@dataclass(frozen=True, slots=True)
class AccountQuota(Statement):
    """-> (id, quota_bytes, quota_messages), or None"""

    user: str


# --- mailboxes -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FindMailbox(Statement):
    """-> MailboxRow of the account's mailbox `name` (locked with `lock`), or None"""

    account_id: int
    name: str
    lock: bool = False


@dataclass(frozen=True, slots=True)
class InsertMailbox(Statement):
    """-> the new mailbox's id, never one a deleted mailbox had"""

    account_id: int
    name: str
    uidvalidity: int
    special_use: str | None = None
    subscribed: bool = True
    noselect: bool = False
    uidnext: int = 1
    highestmodseq: int = 1


@dataclass(frozen=True, slots=True)
class ReviveMailbox(Statement):
    """A \\Noselect placeholder becomes a mailbox again, with a new UIDVALIDITY (and the special
    use, if one is given)."""

    mailbox_id: int
    uidvalidity: int
    special_use: str | None


@dataclass(frozen=True, slots=True)
class LockMailboxes(Statement):
    """-> {id: MailboxLock} of those that exist, locked in ascending id order"""

    ids: Sequence[int]


@dataclass(frozen=True, slots=True)
class LockMailbox(Statement):
    """-> Owner of the mailbox (account id, user, HIGHESTMODSEQ), the mailbox's row locked, or None"""

    mailbox_id: int


@dataclass(frozen=True, slots=True)
class AccountMailboxes(Statement):
    """-> [id] of the account's mailboxes, ascending, locked"""

    account_id: int


@dataclass(frozen=True, slots=True)
class Inferiors(Statement):
    """-> [(id, name)] of the mailboxes below `name` (name + "/..."), by id; with `first`, at
    most one"""

    account_id: int
    name: str
    first: bool = False


@dataclass(frozen=True, slots=True)
class RenameMailbox(Statement):
    mailbox_id: int
    name: str
    uidvalidity: int


@dataclass(frozen=True, slots=True)
class SetSubscribed(Statement):
    """-> how many mailboxes were changed (0 or 1)"""

    account_id: int
    name: str
    subscribed: bool


@dataclass(frozen=True, slots=True)
class MakeNoselect(Statement):
    """The mailbox stays as a \\Noselect name with no messages."""

    mailbox_id: int


@dataclass(frozen=True, slots=True)
class DeleteMailbox(Statement):
    mailbox_id: int


@dataclass(frozen=True, slots=True)
class ResetUidvalidity(Statement):
    """An empty mailbox takes this UIDVALIDITY; its UIDs restart at 1 and its expunge records go."""

    mailbox_id: int
    uidvalidity: int


@dataclass(frozen=True, slots=True)
class ClearExpunged(Statement):
    mailbox_id: int


@dataclass(frozen=True, slots=True)
class AdjustMailbox(Statement):
    """Counters after messages were added or removed: UIDNEXT and HIGHESTMODSEQ become at least
    the values given, the message, unseen and size counters change by the deltas given."""

    mailbox_id: int
    uidnext: int = 0
    highestmodseq: int = 0
    messages: int = 0
    unseen: int = 0
    size: int = 0


@dataclass(frozen=True, slots=True)
class AllocateUids(Statement):
    """-> (first UID, MODSEQ): `count` new UIDs from UIDNEXT and one new MODSEQ, allocated by
    updating the (locked) mailbox row, whose counters grow by `count`, `unseen` and `size`"""

    mailbox_id: int
    count: int
    unseen: int
    size: int


@dataclass(frozen=True, slots=True)
class Mailboxes(Statement):
    """-> [api.Mailbox] of the user's, by name (code point order)"""

    user: str


@dataclass(frozen=True, slots=True)
class MailboxByName(Statement):
    """-> api.Mailbox or None"""

    user: str
    name: str


@dataclass(frozen=True, slots=True)
class MailboxById(Statement):
    """-> api.Mailbox or None"""

    mailbox_id: int


@dataclass(frozen=True, slots=True)
class MailboxStates(Statement):
    """-> [(id, name, uidvalidity, uidnext, highestmodseq, special_use, subscribed, noselect)]
    of the account's mailboxes, by name (code point order)"""

    account_id: int


@dataclass(frozen=True, slots=True)
class ExpungedRecords(Statement):
    """-> [(uid, modseq)] by UID"""

    mailbox_id: int


@dataclass(frozen=True, slots=True)
class ExpungedSince(Statement):
    """-> [uid] expunged at a MODSEQ above `modseq`, by UID"""

    mailbox_id: int
    modseq: int


# --- messages and their bodies ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddBody(Statement):
    """-> the id of a new blob row holding `body` (`size` bytes), referenced `refs` times"""

    size: int
    body: Body
    refs: int


@dataclass(frozen=True, slots=True)
class AddBlobRefs(Statement):
    """Each blob gains `counts[blob]` references (blob rows locked in id order)."""

    counts: dict[int, int]


@dataclass(frozen=True, slots=True)
class ReleaseBlobs(Statement):
    """Each blob loses `counts[blob]` references; a body nobody references any more is deleted
    (with its file or chunks, the file once the transaction committed)."""

    counts: dict[int, int]


@dataclass(frozen=True, slots=True)
class InsertMessages(Statement):
    """rows: (uid, blob id, flags, modseq, internaldate, size, the old POP3 server's UIDL or None)"""

    mailbox_id: int
    rows: Sequence[tuple[int, int, frozenset[str], int, float, int, str | None]]


@dataclass(frozen=True, slots=True)
class CopyMessages(Statement):
    """The messages `uids` of one mailbox again in `dest_id` under `new_uids` (same order), with
    their flags, date and size, at `modseq`."""

    mailbox_id: int
    dest_id: int
    modseq: int
    uids: Sequence[int]
    new_uids: Sequence[int]


@dataclass(frozen=True, slots=True)
class MessageUids(Statement):
    """-> [uid] of the mailbox's messages"""

    mailbox_id: int


@dataclass(frozen=True, slots=True)
class MessageRows(Statement):
    """-> [MessageRow] of those of `uids` (sorted, distinct) present, by UID"""

    mailbox_id: int
    uids: Sequence[int]


@dataclass(frozen=True, slots=True)
class MessageFlags(Statement):
    """-> [(uid, flags, modseq)] of those of `uids` (sorted, distinct) present, by UID"""

    mailbox_id: int
    uids: Sequence[int]


@dataclass(frozen=True, slots=True)
class SetFlags(Statement):
    """changes: (uid, new flags), each message's MODSEQ becoming `modseq`"""

    mailbox_id: int
    modseq: int
    changes: Sequence[tuple[int, frozenset[str]]]


@dataclass(frozen=True, slots=True)
class DeleteMessages(Statement):
    """-> [MessageRow] of the messages deleted: those of `uids` (sorted, distinct), or with
    None every message flagged \\Deleted"""

    mailbox_id: int
    uids: Sequence[int] | None


@dataclass(frozen=True, slots=True)
class DeleteAllMessages(Statement):
    """-> [(blob id, messages, bytes)] of the messages deleted: all of the mailbox's"""

    mailbox_id: int


@dataclass(frozen=True, slots=True)
class RecordExpunged(Statement):
    """Expunge records (uid, modseq), replacing any for the same UID."""

    mailbox_id: int
    records: Sequence[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class PresentUids(Statement):
    """-> how many of `uids` the mailbox holds"""

    mailbox_id: int
    uids: Sequence[int]


@dataclass(frozen=True, slots=True)
class Index(Statement):
    """-> api.MailboxIndex"""

    mailbox_id: int


@dataclass(frozen=True, slots=True)
class MessageMetas(Statement):
    """-> [(uid, flags, modseq, internaldate, size, info bytes)] of those of `uids` (sorted,
    distinct) present, by UID"""

    mailbox_id: int
    uids: Sequence[int]


@dataclass(frozen=True, slots=True)
class MessageSlice(Statement):
    """-> (prefix, part) or None: the message's prefix, and the bytes of the body that bytes
    [start, start + length) of the message as served (prefix + body[skip:]) take from it
    (frontend.served_range); length None: to the end"""

    mailbox_id: int
    uid: int
    start: int
    length: int | None


@dataclass(frozen=True, slots=True)
class ServedMessages(Statement):
    """-> {uid: the whole message as served} of those of `uids` present"""

    mailbox_id: int
    uids: Sequence[int]


@dataclass(frozen=True, slots=True)
class MessagePath(Statement):
    """-> the file of the message's body (pathlib.Path), or None (inline, or no such message)"""

    mailbox_id: int
    uid: int


@dataclass(frozen=True, slots=True)
class StoredMessages(Statement):
    """-> [(uid, flags, modseq, internaldate, the message as served, POP3 UIDL or None)] with
    UID > after_uid, by UID, at most `limit`"""

    mailbox_id: int
    after_uid: int
    limit: int


@dataclass(frozen=True, slots=True)
class Pop3Uidls(Statement):
    """-> [(uid, pop3 uidl)] of the messages with UID >= min_uid that have one, by UID"""

    mailbox_id: int
    min_uid: int


# --- the outbound queue ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InsertQueueEntry(Statement):
    """-> the new entry's id; its recipients as `entry` has them (status, attempts, next attempt,
    last error, warning sent); the entry holds one reference on its blob"""

    blob_id: int
    entry: QueueState
    envelope_json: str


@dataclass(frozen=True, slots=True)
class DeleteQueueEntry(Statement):
    """-> the entry's blob id, None if there is no such entry (its recipients go with it)"""

    queue_id: int


@dataclass(frozen=True, slots=True)
class ClaimRecipients(Statement):
    """-> [(queue id, idx, address, orcpt, notify, attempts, warned, created, envelope JSON)]:
    up to `limit` queued recipients due at `now`, oldest due first, that no other claim holds;
    each gets next attempt `until` and the lease token"""

    now: float
    until: float
    limit: int
    lease: str


@dataclass(frozen=True, slots=True)
class RecordAttempts(Statement):
    """-> the ids of the entries with a recipient updated. outcomes: (queue id, idx, lease,
    status, next attempt, error, warned); one whose lease is no longer the recipient's changes
    nothing. Each recorded attempt counts, and the lease is cleared."""

    outcomes: Sequence[tuple[int, int, str, str, float, str | None, bool]]


@dataclass(frozen=True, slots=True)
class QueuePending(Statement):
    """-> True while the entry has a recipient queued or held"""

    queue_id: int


@dataclass(frozen=True, slots=True)
class QueueExists(Statement):
    """-> bool"""

    queue_id: int


@dataclass(frozen=True, slots=True)
class RetryRecipients(Statement):
    """-> how many: the queued recipients of one entry (None: of all) become due at `now`, their
    leases cleared"""

    queue_id: int | None
    now: float


@dataclass(frozen=True, slots=True)
class QueueEntries(Statement):
    """-> [(id, created, size, envelope JSON)] by id: one entry, or (None) all"""

    queue_id: int | None


@dataclass(frozen=True, slots=True)
class QueueRecipients(Statement):
    """-> [(queue id, idx, address, orcpt, notify, status, attempts, next attempt, last error,
    warned)] by queue id, then idx: of one entry, or (None) of all"""

    queue_id: int | None


@dataclass(frozen=True, slots=True)
class QueueIdsAfter(Statement):
    """-> up to `limit` entry ids above `after_id`, ascending"""

    after_id: int
    limit: int


@dataclass(frozen=True, slots=True)
class QueueMessage(Statement):
    """-> the entry's message as relayed (its prefix, then the body), or None"""

    queue_id: int


@dataclass(frozen=True, slots=True)
class QueueSize(Statement):
    """-> how many entries have a recipient queued"""


# --- leases ----------------------------------------------------------------------------------------
# Expiry is judged by the store's clock: the database server's on PostgreSQL.


@dataclass(frozen=True, slots=True)
class AcquireLease(Statement):
    """-> True if the lease was free, expired or already `owner`'s: it is now `owner`'s until
    now + ttl; False if another owner holds it"""

    name: str
    owner: str
    ttl: float


@dataclass(frozen=True, slots=True)
class RenewLease(Statement):
    """-> True if `owner` holds the lease (expired or not, while nobody took it): it now ends
    at now + ttl"""

    name: str
    owner: str
    ttl: float


@dataclass(frozen=True, slots=True)
class ReleaseLease(Statement):
    """The lease goes, if `owner` holds it."""

    name: str
    owner: str


# --- the full-text index (rules/textindex.py) ------------------------------------------------------
# One entry per stored body (shared by its copies), its text from message.text.index_text. A
# body is "unindexed" from its insert until IndexTexts marks it; searches treat unindexed bodies
# as candidates, so a message is found before its body is indexed.


@dataclass(frozen=True, slots=True)
class UnindexedBodies(Statement):
    """-> [(blob_id, token, served bytes (the first `max_bytes`), MessageInfo bytes)] of up to
    `limit` bodies not indexed yet with an id above `after`, by id; `token` is what IndexTexts
    checks to know the row is still the body that was read (a backend that reuses ids after a
    delete needs it). A body whose bytes cannot be read comes with empty MessageInfo bytes."""

    after: int
    limit: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class IndexTexts(Statement):
    """-> how many bodies were indexed: each (blob_id, token, text, hangul bigrams) whose body is
    still there, still unindexed and still the one read (its token) gets its text, and is
    marked indexed (an empty text: nothing to search, a queue-only body)"""

    rows: Sequence[tuple[int, Any, str, str]]


@dataclass(frozen=True, slots=True)
class TextCandidates(Statement):
    """-> [uid] of the mailbox's messages whose indexed text may contain `needle` (case-folded;
    every message whose text contains it is among them), plus every message whose body is not
    indexed yet; None when this backend's index cannot narrow this needle (a needle too short
    for its trigrams). `hangul_pair`: the needle is two Hangul syllables."""

    mailbox_id: int
    needle: str
    hangul_pair: bool


@dataclass(frozen=True, slots=True)
class IndexProgress(Statement):
    """-> (bodies not indexed yet, bodies)"""


@dataclass(frozen=True, slots=True)
class ResetIndex(Statement):
    """-> how many bodies of the account's messages lose their text and are unindexed again"""

    account_id: int


STATEMENTS = statements_of(globals())
