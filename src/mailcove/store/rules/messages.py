"""Messages: importing, flags, expunging, copying and moving, and reading them.

Deliveries (deliver, submit, append) are the one write that is a single statement on both
backends, measured as the hot path (docs/benchmarks.md): `Deliver` runs inside the SQLite
writer's batch with its batch cache, and as one server-side function on PostgreSQL. What they
share with the rules here is `accounts.check_quota` and the frontend's checks (store/frontend.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from mailcove.core.errors import DiskFull, MailboxNotFound, StoreError
from mailcove.message import MessageInfo
from mailcove.store.api import (
    UID_MAX,
    CopyResult,
    FlagOp,
    FlagUpdate,
    ImportResult,
    IndexEntry,
    MailboxIndex,
    MessageMeta,
    StoredMessage,
    UidValidityConflict,
)
from mailcove.store.rules.accounts import check_quota, locked_account
from mailcove.store.rules.statements import (
    AccountRow,
    AddBlobRefs,
    AddBody,
    AdjustMailbox,
    AllocateUids,
    Announce,
    Body,
    ChargeAccount,
    CopyMessages,
    DeleteAllMessages,
    DeleteMessages,
    FindMailbox,
    Index,
    InsertMessages,
    LockAccountOf,
    LockMailbox,
    LockMailboxes,
    MailboxAccount,
    MessageFlags,
    MessageMetas,
    MessagePath,
    MessageRow,
    MessageRows,
    MessageSlice,
    Pop3Uidls,
    PresentUids,
    RaiseLastUidvalidity,
    RecordExpunged,
    ReleaseBlobs,
    ResetUidvalidity,
    ServedMessages,
    SetFlags,
    SpaceLow,
    StoredMessages,
)
from mailcove.store.sansio import Rule

SEEN = "\\Seen"
# (uid or None for the next free one, size, body, flags, internaldate, old POP3 UIDL or None)
ImportRow = tuple[int | None, int, Body, frozenset[str], float, str | None]
# (uid, flags, modseq, internaldate, size, body, old POP3 UIDL or None)
RestoreRow = tuple[int, frozenset[str], int, float, int, Body, str | None]


def _disk_full() -> DiskFull:
    return DiskFull("free disk space is below the configured floor")


def _gone() -> MailboxNotFound:
    return MailboxNotFound("mailbox no longer exists")


def purge(mailbox_id: int) -> Rule[tuple[int, int]]:
    """Delete every message of a mailbox; returns (messages, bytes) for quota accounting."""
    groups = yield DeleteAllMessages(mailbox_id)
    if groups:
        yield ReleaseBlobs({blob_id: n for blob_id, n, _size in groups})
    return sum(g[1] for g in groups), sum(g[2] for g in groups)


# --- adding ----------------------------------------------------------------------------------------


def import_messages(
    user: str, name: str, rows: Sequence[ImportRow], uidvalidity: int | None, uidnext: int | None
) -> Rule[ImportResult]:
    """See MailStore.import_messages. The frontend has checked UID order and ranges."""
    if rows and (yield SpaceLow()):
        raise _disk_full()
    account = yield from locked_account(user)
    box = yield FindMailbox(account.id, name, lock=True)
    if box is None or box.noselect:
        raise MailboxNotFound(f"no such mailbox: {name}")
    validity, next_uid, modseq = box.uidvalidity, box.uidnext, box.highestmodseq
    if uidvalidity is not None and uidvalidity != validity:
        if box.messages:
            raise UidValidityConflict(
                f"{name} already holds {box.messages} messages under UIDVALIDITY {validity}, not {uidvalidity}"
            )
        validity, next_uid = uidvalidity, 1
        yield ResetUidvalidity(box.id, validity)
        # A mailbox created later under this account must never get this UIDVALIDITY again.
        yield RaiseLastUidvalidity(account.id, validity)
        yield Announce(user, box.id, "mailbox")
    keep: list[tuple[int, ImportRow]] = []
    skipped: list[int] = []
    for r in rows:
        uid = r[0]
        if uid is None:
            uid = next_uid
        elif uid < next_uid:
            skipped.append(uid)
            continue
        if uid > UID_MAX:
            raise StoreError(f"{name} has run out of UIDs", code=550, enhanced="5.2.0")
        keep.append((uid, r))
        next_uid = uid + 1
    total = sum(r[1] for _uid, r in keep)
    check_quota(user, *account[2:], len(keep), total)
    if uidnext is not None:
        next_uid = max(next_uid, uidnext)
    added: list[int] = []
    if not keep:
        yield AdjustMailbox(box.id, uidnext=next_uid)
        return ImportResult(box.id, validity, max(next_uid, 1), added, skipped)
    modseq += 1
    inserts = []
    unseen = 0
    for uid, (_u, size, body, flags, when, pop3_uidl) in keep:
        blob_id = yield AddBody(size, body, 1)
        inserts.append((uid, blob_id, flags, modseq, when, size, pop3_uidl))
        unseen += SEEN not in flags
        added.append(uid)
    yield InsertMessages(box.id, inserts)
    yield AdjustMailbox(box.id, next_uid, modseq, len(keep), unseen, total)
    yield ChargeAccount(account.id, len(keep), total)
    yield Announce(user, box.id, "append", added, modseq)
    return ImportResult(box.id, validity, max(next_uid, 1), added, skipped)


# --- flags -----------------------------------------------------------------------------------------


def store_flags(
    mailbox_id: int, uids: Sequence[int], op: FlagOp, flags: frozenset[str], unchanged_since: int | None
) -> Rule[FlagUpdate]:
    owner = yield LockMailbox(mailbox_id)
    if owner is None:
        raise _gone()
    modseq = owner.highestmodseq + 1
    changed: list[IndexEntry] = []
    modified: list[int] = []
    updates: list[tuple[int, frozenset[str]]] = []
    sets: dict[frozenset[str], frozenset[str]] = {}  # one object per distinct new set
    unseen_delta = 0
    for uid, old, old_modseq in (yield MessageFlags(mailbox_id, sorted(set(uids)))):
        if unchanged_since is not None and old_modseq > unchanged_since:
            modified.append(uid)  # RFC 7162 3.1.3: fails the UNCHANGEDSINCE test
            continue
        if op == "+":
            new = old | flags
        elif op == "-":
            new = old - flags
        else:
            new = flags
        if new == old:
            continue
        new = sets.setdefault(new, new)
        if (SEEN in old) != (SEEN in new):
            unseen_delta += -1 if SEEN in new else 1
        updates.append((uid, new))
        changed.append(IndexEntry(uid, new, modseq))
    if changed:
        yield SetFlags(mailbox_id, modseq, updates)
        yield AdjustMailbox(mailbox_id, highestmodseq=modseq, unseen=unseen_delta)
        yield Announce(owner.user, mailbox_id, "flags", [e.uid for e in changed], modseq)
    return FlagUpdate(changed, modified)


# --- removing --------------------------------------------------------------------------------------


def expunge(mailbox_id: int, uids: Sequence[int] | None) -> Rule[list[int]]:
    """Remove `uids`, or (None) every message flagged \\Deleted; returns the UIDs removed."""
    account = yield LockAccountOf(mailbox_id)
    owner = yield LockMailbox(mailbox_id)
    if account is None or owner is None:
        raise _gone()
    rows = yield DeleteMessages(mailbox_id, None if uids is None else sorted(set(uids)))
    if not rows:
        return []
    return (yield from removed(account, mailbox_id, owner.highestmodseq + 1, rows))


def removed(account: AccountRow, mailbox_id: int, modseq: int, rows: Sequence[MessageRow]) -> Rule[list[int]]:
    """Book-keeping after message rows were deleted from a mailbox: expunge records (for
    QRESYNC), the mailbox's counters, the account's usage, the bodies' references."""
    uids = sorted(r.uid for r in rows)
    size = sum(r.size for r in rows)
    unseen = sum(1 for r in rows if SEEN not in r.flags)
    yield RecordExpunged(mailbox_id, [(uid, modseq) for uid in uids])
    yield AdjustMailbox(mailbox_id, highestmodseq=modseq, messages=-len(uids), unseen=-unseen, size=-size)
    yield ChargeAccount(account.id, -len(uids), -size)
    yield ReleaseBlobs(dict(Counter(r.blob_id for r in rows)))
    yield Announce(account.name, mailbox_id, "expunge", uids, modseq)
    return uids


# --- copying and moving ----------------------------------------------------------------------------


def copy(mailbox_id: int, uids: Sequence[int], dest_id: int, move: bool) -> Rule[CopyResult]:
    if not move and (yield SpaceLow()):
        raise _disk_full()
    account = yield LockAccountOf(mailbox_id)
    if account is None:
        raise _gone()
    if (yield MailboxAccount(dest_id)) != account.id:
        raise MailboxNotFound("no such mailbox")  # never reveal another account's mailbox
    return (yield from copy_rows(account, mailbox_id, uids, dest_id, move=move))


def copy_rows(
    account: AccountRow, mailbox_id: int, uids: Sequence[int], dest_id: int, *, move: bool
) -> Rule[CopyResult]:
    """Copy (or move) messages within one account, whose row is locked: the copies share the
    bodies, get new UIDs from the destination's UIDNEXT and one new MODSEQ."""
    boxes = yield LockMailboxes(sorted({mailbox_id, dest_id}))
    dest = boxes.get(dest_id)
    if dest is None or dest.noselect:
        raise MailboxNotFound("no such mailbox")
    if mailbox_id not in boxes:
        raise _gone()
    rows = yield MessageRows(mailbox_id, sorted(set(uids)))
    if not rows:
        return CopyResult(dest.uidvalidity, [])
    n = len(rows)
    size = sum(r.size for r in rows)
    if not move or mailbox_id == dest_id:
        check_quota(account.name, *account[2:], n, size)
    unseen = sum(1 for r in rows if SEEN not in r.flags)
    first, modseq = yield AllocateUids(dest_id, n, unseen, size)
    old_uids = [r.uid for r in rows]
    new_uids = list(range(first, first + n))
    yield CopyMessages(mailbox_id, dest_id, modseq, old_uids, new_uids)
    yield AddBlobRefs(dict(Counter(r.blob_id for r in rows)))
    yield ChargeAccount(account.id, n, size)
    yield Announce(account.name, dest_id, "append", new_uids, modseq)
    if move:
        gone = yield DeleteMessages(mailbox_id, old_uids)
        source = yield LockMailbox(mailbox_id)  # its HIGHESTMODSEQ moved if it is also the destination
        yield from removed(account, mailbox_id, source.highestmodseq + 1, gone)
    return CopyResult(dest.uidvalidity, list(zip(old_uids, new_uids, strict=True)))


# --- copying a whole installation to another backend (`mailcove db copy`) ------------------------


def restore_messages(user: str, name: str, rows: Sequence[RestoreRow]) -> Rule[None]:
    """Messages with their UID, flags, MODSEQ and date unchanged (see MailStore.restore_messages)."""
    account = yield from locked_account(user)
    box = yield FindMailbox(account.id, name, lock=True)
    if box is None:
        raise MailboxNotFound(f"no such mailbox: {name}")
    for uid, _flags, modseq, *_rest in rows:
        if not 0 < uid < box.uidnext or modseq > box.highestmodseq:
            raise ValueError(
                f"{name}: UID {uid} / MODSEQ {modseq} outside UIDNEXT {box.uidnext} / HIGHESTMODSEQ {box.highestmodseq}"
            )
    uids = [r[0] for r in rows]
    if len(set(uids)) != len(uids) or (yield PresentUids(box.id, uids)):
        raise ValueError(f"{name}: a restored UID is already present")
    inserts = []
    unseen = total = 0
    for uid, flags, modseq, when, size, body, pop3_uidl in rows:
        blob_id = yield AddBody(size, body, 1)
        inserts.append((uid, blob_id, flags, modseq, when, size, pop3_uidl))
        unseen += SEEN not in flags
        total += size
    yield InsertMessages(box.id, inserts)
    yield AdjustMailbox(box.id, messages=len(rows), unseen=unseen, size=total)
    yield ChargeAccount(account.id, len(rows), total)


def export_messages(mailbox_id: int, after_uid: int, limit: int) -> Rule[list[StoredMessage]]:
    return [StoredMessage(*r) for r in (yield StoredMessages(mailbox_id, after_uid, limit))]


def pop3_uidls(mailbox_id: int, min_uid: int) -> Rule[dict[int, str]]:
    return dict((yield Pop3Uidls(mailbox_id, min_uid)))


# --- reading ---------------------------------------------------------------------------------------


def index(mailbox_id: int) -> Rule[MailboxIndex]:
    return (yield Index(mailbox_id))


def fetch_meta(mailbox_id: int, uids: Sequence[int]) -> Rule[list[MessageMeta]]:
    rows = yield MessageMetas(mailbox_id, sorted(set(uids)))
    return [
        MessageMeta(uid, flags, modseq, idate, size, MessageInfo.from_bytes(info))
        for uid, flags, modseq, idate, size, info in rows
    ]


def read_message(mailbox_id: int, uid: int, start: int, length: int | None) -> Rule[bytes]:
    """Bytes [start, start + length) of the message as served: its prefix, then the body from
    the prefix's skip on (api.MessagePrefix)."""
    found = yield MessageSlice(mailbox_id, uid, start, length)
    if found is None:
        raise MailboxNotFound(f"no message with UID {uid}")
    prefix, part = found
    if not prefix or start >= len(prefix):
        return part
    return (prefix[start:] if length is None else prefix[start : start + length]) + part


def read_messages(mailbox_id: int, uids: Sequence[int]) -> Rule[dict[int, bytes]]:
    if not uids:
        return {}
    return (yield ServedMessages(mailbox_id, sorted(set(uids))))


def message_path(mailbox_id: int, uid: int) -> Rule[object]:
    return (yield MessagePath(mailbox_id, uid))
