"""Write operations, run inside the writer thread's transaction (see writer.py).

Each function takes the connection and the Txn first; the store binds the remaining arguments.
They raise core.errors exceptions, which roll back only their own SAVEPOINT."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence

from mailcove.core.errors import (
    AccountNotFound,
    BadMailboxName,
    DiskFull,
    MailboxExists,
    MailboxNotFound,
    QuotaExceeded,
    StoreError,
)
from mailcove.store.api import (
    DEFAULT_MAILBOXES,
    NO_PREFIX,
    SEPARATOR,
    UID_MAX,
    AppendResult,
    CopyResult,
    FlagUpdate,
    ImportResult,
    IndexEntry,
    MessagePrefix,
    UidValidityConflict,
)
from mailcove.store.names import is_inferior, normalize_name, parents
from mailcove.store.sqlite.driver import Txn, uses_batch_cache

SEEN = "\\Seen"
DELETED = "\\Deleted"
CHUNK = 500
# (uid or None, size, inline data, blob path, scanned info, flags, internaldate)
ImportRow = tuple[int | None, int, bytes | None, str | None, bytes, frozenset[str], float]


def _account(conn: sqlite3.Connection, user: str) -> tuple[int, int, int, int, int]:
    row = conn.execute(
        "SELECT id, quota_bytes, quota_messages, used_bytes, used_messages FROM accounts WHERE name = ?", (user,)
    ).fetchone()
    if row is None:
        raise AccountNotFound(f"no such account: {user}")
    return row


def _next_uidvalidity(conn: sqlite3.Connection, account_id: int) -> int:
    (last,) = conn.execute("SELECT last_uidvalidity FROM accounts WHERE id = ?", (account_id,)).fetchone()
    value = max(int(time.time()), last + 1)
    conn.execute("UPDATE accounts SET last_uidvalidity = ? WHERE id = ?", (value, account_id))
    return value


def _mailbox_row(conn: sqlite3.Connection, account_id: int, name: str) -> tuple[int, int, int, int, int] | None:
    return conn.execute(
        "SELECT id, uidvalidity, uidnext, highestmodseq, noselect FROM mailboxes WHERE account_id = ? AND name = ?",
        (account_id, name),
    ).fetchone()


def _insert_mailbox(
    conn: sqlite3.Connection, account_id: int, name: str, special_use: str | None, noselect: bool = False
) -> int:
    uidvalidity = _next_uidvalidity(conn, account_id)
    # Never a deleted mailbox's id again (schema migration 5).
    (mailbox_id,) = conn.execute(
        "UPDATE mailbox_id_high SET last = max(last, (SELECT COALESCE(MAX(id), 0) FROM mailboxes)) + 1"
        " RETURNING last"
    ).fetchone()
    conn.execute(
        "INSERT INTO mailboxes (id, account_id, name, uidvalidity, special_use, subscribed, noselect)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (mailbox_id, account_id, name, uidvalidity, special_use, 0 if noselect else 1, int(noselect)),
    )
    return int(mailbox_id)


def create_account(conn: sqlite3.Connection, txn: Txn, user: str, quota_bytes: int, quota_messages: int) -> bool:
    if conn.execute("SELECT 1 FROM accounts WHERE name = ?", (user,)).fetchone():
        return False
    cur = conn.execute(
        "INSERT INTO accounts (name, quota_bytes, quota_messages) VALUES (?, ?, ?)", (user, quota_bytes, quota_messages)
    )
    account_id = cur.lastrowid or 0
    for name, special in DEFAULT_MAILBOXES:
        mailbox_id = _insert_mailbox(conn, account_id, name, special)
        txn.change(user, mailbox_id, "mailbox", (), 0)
    return True


def delete_account(conn: sqlite3.Connection, txn: Txn, user: str) -> None:
    account_id = _account(conn, user)[0]
    for (mailbox_id,) in conn.execute("SELECT id FROM mailboxes WHERE account_id = ?", (account_id,)).fetchall():
        _purge_mailbox(conn, txn, mailbox_id)
        conn.execute("DELETE FROM mailboxes WHERE id = ?", (mailbox_id,))
        conn.execute("DELETE FROM expunged WHERE mailbox_id = ?", (mailbox_id,))
        txn.change(user, mailbox_id, "mailbox", (), 0)
    conn.execute("DELETE FROM accounts WHERE id = ?", (account_id,))


def set_quota(conn: sqlite3.Connection, txn: Txn, user: str, max_bytes: int, max_messages: int) -> None:
    cur = conn.execute(
        "UPDATE accounts SET quota_bytes = ?, quota_messages = ? WHERE name = ?", (max_bytes, max_messages, user)
    )
    if cur.rowcount == 0:
        raise AccountNotFound(f"no such account: {user}")


def _release_blob(conn: sqlite3.Connection, txn: Txn, blob_id: int, count: int = 1) -> None:
    conn.execute("UPDATE blobs SET refs = refs - ? WHERE id = ?", (count, blob_id))
    row = conn.execute("SELECT refs, path FROM blobs WHERE id = ?", (blob_id,)).fetchone()
    if row is not None and row[0] <= 0:
        conn.execute("DELETE FROM blobs WHERE id = ?", (blob_id,))
        if row[1]:
            txn.remove_blobs.append(row[1])


def _purge_mailbox(conn: sqlite3.Connection, txn: Txn, mailbox_id: int) -> tuple[int, int]:
    """Delete every message of a mailbox; returns (messages, bytes) removed for quota accounting."""
    rows = conn.execute(
        "SELECT blob_id, count(*), sum(size) FROM messages WHERE mailbox_id = ? GROUP BY blob_id", (mailbox_id,)
    ).fetchall()
    n = total = 0
    for blob_id, count, size in rows:
        _release_blob(conn, txn, blob_id, count)
        n += count
        total += size
    conn.execute("DELETE FROM messages WHERE mailbox_id = ?", (mailbox_id,))
    return n, total


# --- mailboxes ------------------------------------------------------------------------------------


def create_mailbox(conn: sqlite3.Connection, txn: Txn, user: str, name: str, special_use: str | None) -> int:
    name = normalize_name(name)
    account_id = _account(conn, user)[0]
    existing = _mailbox_row(conn, account_id, name)
    if existing is not None:
        if existing[4]:  # a \Noselect placeholder left by DELETE becomes a real mailbox again
            conn.execute(
                "UPDATE mailboxes SET noselect = 0, uidvalidity = ?, special_use = COALESCE(?, special_use)"
                " WHERE id = ?",
                (_next_uidvalidity(conn, account_id), special_use, existing[0]),
            )
            txn.change(user, existing[0], "mailbox", (), 0)
            return existing[0]
        raise MailboxExists(f"mailbox already exists: {name}")
    for parent in parents(name):
        if _mailbox_row(conn, account_id, parent) is None:
            pid = _insert_mailbox(conn, account_id, parent, None)
            txn.change(user, pid, "mailbox", (), 0)
    mailbox_id = _insert_mailbox(conn, account_id, name, special_use)
    txn.change(user, mailbox_id, "mailbox", (), 0)
    return mailbox_id


def delete_mailbox(conn: sqlite3.Connection, txn: Txn, user: str, name: str) -> None:
    name = normalize_name(name)
    if name == "INBOX":
        raise BadMailboxName("INBOX cannot be deleted")
    account_id, *_ = _account(conn, user)
    row = _mailbox_row(conn, account_id, name)
    if row is None:
        raise MailboxNotFound(f"no such mailbox: {name}")
    mailbox_id, noselect = row[0], row[4]
    has_children = conn.execute(
        "SELECT 1 FROM mailboxes WHERE account_id = ? AND substr(name, 1, ?) = ? LIMIT 1",
        (account_id, len(name) + 1, name + SEPARATOR),
    ).fetchone()
    if has_children and noselect:
        raise StoreError(f"{name} has inferior mailboxes and is already \\Noselect", code=550, enhanced="5.2.0")
    n, total = _purge_mailbox(conn, txn, mailbox_id)
    conn.execute(
        "UPDATE accounts SET used_messages = used_messages - ?, used_bytes = used_bytes - ? WHERE id = ?",
        (n, total, account_id),
    )
    conn.execute("DELETE FROM expunged WHERE mailbox_id = ?", (mailbox_id,))
    if has_children:
        # RFC 9051 6.3.4: the name stays as a \Noselect parent of its inferiors.
        conn.execute(
            "UPDATE mailboxes SET noselect = 1, messages = 0, unseen = 0, size = 0 WHERE id = ?", (mailbox_id,)
        )
    else:
        conn.execute("DELETE FROM mailboxes WHERE id = ?", (mailbox_id,))
    txn.change(user, mailbox_id, "mailbox", (), 0)


def rename_mailbox(conn: sqlite3.Connection, txn: Txn, user: str, old: str, new: str) -> None:
    old, new = normalize_name(old), normalize_name(new)
    account_id, *_ = _account(conn, user)
    row = _mailbox_row(conn, account_id, old)
    if row is None:
        raise MailboxNotFound(f"no such mailbox: {old}")
    if _mailbox_row(conn, account_id, new) is not None:
        raise MailboxExists(f"mailbox already exists: {new}")
    if new == old or is_inferior(new, old):
        raise BadMailboxName("cannot rename a mailbox into itself")
    for parent in parents(new):
        if _mailbox_row(conn, account_id, parent) is None:
            pid = _insert_mailbox(conn, account_id, parent, None)
            txn.change(user, pid, "mailbox", (), 0)
    if old == "INBOX":
        # RFC 9051 6.3.6: renaming INBOX moves its messages to a new mailbox; INBOX stays, empty.
        new_id = _insert_mailbox(conn, account_id, new, None)
        uids = [u for (u,) in conn.execute("SELECT uid FROM messages WHERE mailbox_id = ?", (row[0],))]
        if uids:
            _copy_rows(conn, txn, user, row[0], uids, new_id, move=True)
        txn.change(user, new_id, "mailbox", (), 0)
        return
    children = conn.execute(
        "SELECT id, name FROM mailboxes WHERE account_id = ? AND substr(name, 1, ?) = ?",
        (account_id, len(old) + 1, old + SEPARATOR),
    ).fetchall()
    # Renaming changes the name, so clients must not reuse cached UIDs under it: new UIDVALIDITY.
    conn.execute(
        "UPDATE mailboxes SET name = ?, uidvalidity = ? WHERE id = ?",
        (new, _next_uidvalidity(conn, account_id), row[0]),
    )
    txn.change(user, row[0], "mailbox", (), 0)
    for child_id, child_name in children:
        conn.execute(
            "UPDATE mailboxes SET name = ?, uidvalidity = ? WHERE id = ?",
            (new + child_name[len(old) :], _next_uidvalidity(conn, account_id), child_id),
        )
        txn.change(user, child_id, "mailbox", (), 0)


def set_subscribed(conn: sqlite3.Connection, txn: Txn, user: str, name: str, subscribed: bool) -> None:
    name = normalize_name(name)
    account_id, *_ = _account(conn, user)
    cur = conn.execute(
        "UPDATE mailboxes SET subscribed = ? WHERE account_id = ? AND name = ?", (int(subscribed), account_id, name)
    )
    if cur.rowcount == 0:
        if not subscribed:
            return
        # RFC 9051 6.3.7 allows subscribing to a name that does not exist (yet): keep a placeholder.
        mailbox_id = _insert_mailbox(conn, account_id, name, None, noselect=True)
        conn.execute("UPDATE mailboxes SET subscribed = 1 WHERE id = ?", (mailbox_id,))
    txn.change(user, 0, "mailbox", (), 0)


# --- messages -------------------------------------------------------------------------------------


def _cached_account(conn: sqlite3.Connection, txn: Txn, user: str) -> list[int]:
    row = txn.cache.accounts.get(user)
    if row is None:
        row = list(_account(conn, user))
        txn.cache.accounts[user] = row
    return row


def _cached_mailbox(conn: sqlite3.Connection, txn: Txn, account_id: int, name: str) -> list[int] | None:
    key = (account_id, name)
    if key in txn.cache.mailboxes:
        return txn.cache.mailboxes[key]
    r = conn.execute(
        "SELECT id, uidvalidity, uidnext, highestmodseq, noselect, messages, unseen, size FROM mailboxes"
        " WHERE account_id = ? AND name = ?",
        (account_id, name),
    ).fetchone()
    row = list(r) if r is not None else None
    txn.cache.mailboxes[key] = row
    return row


@uses_batch_cache
def deliver(
    conn: sqlite3.Connection,
    txn: Txn,
    targets: Sequence[tuple[str, str, frozenset[str]]],
    size: int,
    data: bytes | None,
    path: str | None,
    info: bytes,
    internaldate: float,
    fallback_to_inbox: bool,
    outbound: tuple[str, list[tuple[str, str | None, str]]] | None = None,
    prefix: MessagePrefix = NO_PREFIX,
) -> tuple[list[AppendResult], int | None]:
    """Local copies plus, when `outbound` is (envelope JSON, [(address, orcpt, notify)]), one
    queue entry for the remote recipients: one blob, one transaction. `size` is the body's; a
    local copy's size (and quota charge) is its prefix's plus the body's from `prefix.skip` on."""
    if txn.disk_low:
        raise DiskFull("free disk space is below the configured floor")
    # Resolve and check everything before writing anything, so the answer is all or nothing.
    accounts: dict[str, list[int]] = {}
    needed: dict[str, int] = {}
    for user, _mailbox, _flags in targets:
        if user not in accounts:
            accounts[user] = _cached_account(conn, txn, user)
        needed[user] = needed.get(user, 0) + 1
    body_size = size
    size = len(prefix.local) + body_size - prefix.skip
    for user, (_aid, qbytes, qmsgs, ubytes, umsgs) in accounts.items():
        n = needed[user]
        if qmsgs and umsgs + n > qmsgs:
            raise QuotaExceeded(f"{user} is over its message quota", resource="messages")
        if qbytes and ubytes + n * size > qbytes:
            raise QuotaExceeded(f"{user} is over its storage quota", resource="bytes")
    boxes: list[tuple[str, list[int], str, frozenset[str]]] = []
    for user, mailbox, flags in targets:
        account_id = accounts[user][0]
        row = _cached_mailbox(conn, txn, account_id, mailbox)
        if row is None or row[4]:
            if not fallback_to_inbox:
                raise MailboxNotFound(f"no such mailbox: {mailbox}")
            mailbox = "INBOX"
            row = _cached_mailbox(conn, txn, account_id, mailbox)
            if row is None:
                raise MailboxNotFound(f"{user} has no INBOX")
        boxes.append((user, row, mailbox, flags))
    cur = conn.execute(
        "INSERT INTO blobs (size, refs, data, path, info, prefix, skip) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (body_size, len(targets) + (1 if outbound else 0), data, path, info, prefix.local or None, prefix.skip),
    )
    blob_id = cur.lastrowid or 0
    queue_id: int | None = None
    if outbound is not None:
        envelope_json, rcpts = outbound
        cur = conn.execute(
            "INSERT INTO queue (blob_id, created, size, envelope, prefix) VALUES (?, ?, ?, ?, ?)",
            (blob_id, internaldate, len(prefix.queued) + body_size - prefix.skip, envelope_json,
             prefix.queued or None),
        )
        queue_id = cur.lastrowid or 0
        conn.executemany(
            "INSERT INTO queue_rcpts (queue_id, idx, address, orcpt, notify, next_attempt) VALUES (?, ?, ?, ?, ?, ?)",
            [(queue_id, i, a, o, n, internaldate) for i, (a, o, n) in enumerate(rcpts)],
        )
    results: list[AppendResult] = []
    inserts: list[tuple[int, int, int, str, int, float, int]] = []
    touch = txn.cache.touch
    for user, row, mailbox, flags in boxes:
        mb = touch(row)
        uid = mb[2]
        modseq = mb[3] + 1
        mb[2] = uid + 1
        mb[3] = modseq
        mb[5] += 1
        if SEEN not in flags:
            mb[6] += 1
        mb[7] += size
        acct = touch(accounts[user])
        acct[3] += size
        acct[4] += 1
        inserts.append((mb[0], uid, blob_id, txn.flag_id(conn, flags), modseq, internaldate, size))
        txn.change(user, mb[0], "append", (uid,), modseq)
        results.append(AppendResult(user, mb[0], mailbox, mb[1], uid, modseq))
    conn.executemany(
        "INSERT INTO messages (mailbox_id, uid, blob_id, flagset, modseq, internaldate, size)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        inserts,
    )
    return results, queue_id


def import_messages(
    conn: sqlite3.Connection,
    txn: Txn,
    user: str,
    name: str,
    rows: Sequence[ImportRow],
    uidvalidity: int | None,
    uidnext: int | None,
) -> ImportResult:
    """See MailStore.import_messages. The store has checked UID order and ranges."""
    if txn.disk_low and rows:
        raise DiskFull("free disk space is below the configured floor")
    account_id, qbytes, qmsgs, ubytes, umsgs = _account(conn, user)
    row = conn.execute(
        "SELECT id, uidvalidity, uidnext, highestmodseq, noselect, messages FROM mailboxes"
        " WHERE account_id = ? AND name = ?",
        (account_id, name),
    ).fetchone()
    if row is None or row[4]:
        raise MailboxNotFound(f"no such mailbox: {name}")
    mailbox_id, validity, next_uid, modseq, _noselect, count = row
    if uidvalidity is not None and uidvalidity != validity:
        if count:
            raise UidValidityConflict(
                f"{name} already holds {count} messages under UIDVALIDITY {validity}, not {uidvalidity}"
            )
        validity, next_uid = uidvalidity, 1
        conn.execute("UPDATE mailboxes SET uidvalidity = ?, uidnext = 1 WHERE id = ?", (validity, mailbox_id))
        conn.execute("DELETE FROM expunged WHERE mailbox_id = ?", (mailbox_id,))
        # A mailbox created later under this account must never get this UIDVALIDITY again.
        conn.execute(
            "UPDATE accounts SET last_uidvalidity = max(last_uidvalidity, ?) WHERE id = ?", (validity, account_id)
        )
        txn.change(user, mailbox_id, "mailbox", (), 0)
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
    if qmsgs and umsgs + len(keep) > qmsgs:
        raise QuotaExceeded(f"{user} is over its message quota", resource="messages")
    if qbytes and ubytes + total > qbytes:
        raise QuotaExceeded(f"{user} is over its storage quota", resource="bytes")
    if uidnext is not None:
        next_uid = max(next_uid, uidnext)
    added: list[int] = []
    if keep:
        modseq += 1
        inserts = []
        unseen = 0
        for uid, (_u, size, data, path, info, flags, when) in keep:
            cur = conn.execute(
                "INSERT INTO blobs (size, refs, data, path, info) VALUES (?, 1, ?, ?, ?)", (size, data, path, info)
            )
            inserts.append((mailbox_id, uid, cur.lastrowid or 0, txn.flag_id(conn, flags), modseq, when, size))
            if SEEN not in flags:
                unseen += 1
            added.append(uid)
        conn.executemany(
            "INSERT INTO messages (mailbox_id, uid, blob_id, flagset, modseq, internaldate, size)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            inserts,
        )
        conn.execute(
            "UPDATE mailboxes SET uidnext = ?, highestmodseq = ?, messages = messages + ?, unseen = unseen + ?,"
            " size = size + ? WHERE id = ?",
            (next_uid, modseq, len(keep), unseen, total, mailbox_id),
        )
        conn.execute(
            "UPDATE accounts SET used_messages = used_messages + ?, used_bytes = used_bytes + ? WHERE id = ?",
            (len(keep), total, account_id),
        )
        txn.change(user, mailbox_id, "append", added, modseq)
    else:
        conn.execute("UPDATE mailboxes SET uidnext = max(uidnext, ?) WHERE id = ?", (next_uid, mailbox_id))
    return ImportResult(mailbox_id, validity, max(next_uid, 1), added, skipped)


def queue_delete(conn: sqlite3.Connection, txn: Txn, queue_id: int) -> None:
    row = conn.execute("SELECT blob_id FROM queue WHERE id = ?", (queue_id,)).fetchone()
    if row is None:
        raise StoreError(f"no queue entry {queue_id}", code=550, enhanced="5.1.0")
    conn.execute("DELETE FROM queue_rcpts WHERE queue_id = ?", (queue_id,))
    conn.execute("DELETE FROM queue WHERE id = ?", (queue_id,))
    _release_blob(conn, txn, row[0])


def queue_claim(
    conn: sqlite3.Connection, txn: Txn, now: float, lease_seconds: float, limit: int, lease: str
) -> list[tuple[int, int, str, str | None, str, int, int, float, str]]:
    """Lease due recipients: (queue_id, idx, address, orcpt, notify, attempts, warned, created, envelope)."""
    rows = conn.execute(
        "SELECT r.queue_id, r.idx, r.address, r.orcpt, r.notify, r.attempts, r.warned, q.created, q.envelope"
        " FROM queue_rcpts r JOIN queue q ON q.id = r.queue_id"
        " WHERE r.status = 'queued' AND r.next_attempt <= ? ORDER BY r.next_attempt, r.queue_id, r.idx LIMIT ?",
        (now, limit),
    ).fetchall()
    conn.executemany(
        "UPDATE queue_rcpts SET next_attempt = ?, lease = ? WHERE queue_id = ? AND idx = ?",
        [(now + lease_seconds, lease, r[0], r[1]) for r in rows],
    )
    return rows


def queue_record(
    conn: sqlite3.Connection, txn: Txn, outcomes: Sequence[tuple[int, int, str, str, float, str | None, bool]]
) -> list[int]:
    """outcomes: (queue_id, idx, lease, status, next_attempt, error, warned)."""
    touched: set[int] = set()
    for queue_id, idx, lease, status, next_attempt, error, warned in outcomes:
        cur = conn.execute(
            "UPDATE queue_rcpts SET status = ?, next_attempt = ?, last_error = ?, warned = ?,"
            " attempts = attempts + 1, lease = NULL WHERE queue_id = ? AND idx = ? AND lease = ?",
            (status, next_attempt, error, int(warned), queue_id, idx, lease),
        )
        if cur.rowcount:
            touched.add(queue_id)
    done: list[int] = []
    for queue_id in sorted(touched):
        left = conn.execute(
            "SELECT 1 FROM queue_rcpts WHERE queue_id = ? AND status IN ('queued', 'held') LIMIT 1", (queue_id,)
        ).fetchone()
        if left is None:
            queue_delete(conn, txn, queue_id)
            done.append(queue_id)
    return done


def queue_retry(conn: sqlite3.Connection, txn: Txn, queue_id: int | None, now: float) -> int:
    if queue_id is None:
        cur = conn.execute(
            "UPDATE queue_rcpts SET next_attempt = ?, lease = NULL WHERE status = 'queued'", (now,)
        )
    else:
        if conn.execute("SELECT 1 FROM queue WHERE id = ?", (queue_id,)).fetchone() is None:
            raise StoreError(f"no queue entry {queue_id}", code=550, enhanced="5.1.0")
        cur = conn.execute(
            "UPDATE queue_rcpts SET next_attempt = ?, lease = NULL WHERE queue_id = ? AND status = 'queued'",
            (now, queue_id),
        )
    return cur.rowcount


def _owner(conn: sqlite3.Connection, mailbox_id: int) -> tuple[int, str, int]:
    row = conn.execute(
        "SELECT a.id, a.name, m.highestmodseq FROM mailboxes m JOIN accounts a ON a.id = m.account_id"
        " WHERE m.id = ?",
        (mailbox_id,),
    ).fetchone()
    if row is None:
        raise MailboxNotFound("mailbox no longer exists")
    return row


def _chunks(uids: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(uids), CHUNK):
        yield uids[i : i + CHUNK]


def store_flags(
    conn: sqlite3.Connection,
    txn: Txn,
    mailbox_id: int,
    uids: Sequence[int],
    op: str,
    flags: frozenset[str],
    unchanged_since: int | None,
) -> FlagUpdate:
    _account_id, user, modseq = _owner(conn, mailbox_id)
    modseq += 1
    changed: list[IndexEntry] = []
    modified: list[int] = []
    unseen_delta = 0
    for chunk in _chunks(sorted(set(uids))):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT uid, flagset, modseq FROM messages WHERE mailbox_id = ? AND uid IN ({marks})",
            (mailbox_id, *chunk),
        ).fetchall()
        for uid, fid, old_modseq in rows:
            if unchanged_since is not None and old_modseq > unchanged_since:
                modified.append(uid)
                continue
            old = txn.flag_set(conn, fid)
            if op == "+":
                new = old | flags
            elif op == "-":
                new = old - flags
            else:
                new = flags
            if new == old:
                continue
            conn.execute(
                "UPDATE messages SET flagset = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?",
                (txn.flag_id(conn, new), modseq, mailbox_id, uid),
            )
            if (SEEN in old) != (SEEN in new):
                unseen_delta += -1 if SEEN in new else 1
            changed.append(IndexEntry(uid, new, modseq))
    if changed:
        conn.execute(
            "UPDATE mailboxes SET highestmodseq = ?, unseen = unseen + ? WHERE id = ?",
            (modseq, unseen_delta, mailbox_id),
        )
        txn.change(user, mailbox_id, "flags", [e.uid for e in changed], modseq)
    return FlagUpdate(changed, modified)


def expunge(conn: sqlite3.Connection, txn: Txn, mailbox_id: int, uids: Sequence[int] | None) -> list[int]:
    account_id, user, modseq = _owner(conn, mailbox_id)
    if uids is None:
        rows = conn.execute(
            "SELECT uid, blob_id, flagset, size FROM messages WHERE mailbox_id = ? AND flagset IN"
            " (SELECT id FROM flagsets WHERE instr(flags, ?) > 0)",
            (mailbox_id, DELETED),
        ).fetchall()
        rows = [r for r in rows if DELETED in txn.flag_set(conn, r[2])]
    else:
        rows = []
        for chunk in _chunks(sorted(set(uids))):
            marks = ",".join("?" * len(chunk))
            rows.extend(
                conn.execute(
                    f"SELECT uid, blob_id, flagset, size FROM messages WHERE mailbox_id = ? AND uid IN ({marks})",
                    (mailbox_id, *chunk),
                ).fetchall()
            )
    if not rows:
        return []
    return _remove_rows(conn, txn, account_id, user, mailbox_id, modseq + 1, rows)


def _remove_rows(
    conn: sqlite3.Connection,
    txn: Txn,
    account_id: int,
    user: str,
    mailbox_id: int,
    modseq: int,
    rows: list[tuple[int, int, str, int]],
) -> list[int]:
    removed: list[int] = []
    total = unseen = 0
    blobs: dict[int, int] = {}
    for uid, blob_id, fid, size in rows:
        removed.append(uid)
        total += size
        if SEEN not in txn.flag_set(conn, fid):
            unseen += 1
        blobs[blob_id] = blobs.get(blob_id, 0) + 1
    conn.executemany("DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", [(mailbox_id, u) for u in removed])
    conn.executemany(
        "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)",
        [(mailbox_id, u, modseq) for u in removed],
    )
    for blob_id, count in blobs.items():
        _release_blob(conn, txn, blob_id, count)
    conn.execute(
        "UPDATE mailboxes SET highestmodseq = ?, messages = messages - ?, unseen = unseen - ?, size = size - ?"
        " WHERE id = ?",
        (modseq, len(removed), unseen, total, mailbox_id),
    )
    conn.execute(
        "UPDATE accounts SET used_messages = used_messages - ?, used_bytes = used_bytes - ? WHERE id = ?",
        (len(removed), total, account_id),
    )
    removed.sort()
    txn.change(user, mailbox_id, "expunge", removed, modseq)
    return removed


def copy(
    conn: sqlite3.Connection, txn: Txn, mailbox_id: int, uids: Sequence[int], dest_id: int, move: bool
) -> CopyResult:
    if txn.disk_low and not move:
        raise DiskFull("free disk space is below the configured floor")
    account_id, user, _ = _owner(conn, mailbox_id)
    dest_account, _dest_user, _ = _owner(conn, dest_id)
    if dest_account != account_id:
        raise MailboxNotFound("no such mailbox")  # never reveal another account's mailbox
    return _copy_rows(conn, txn, user, mailbox_id, uids, dest_id, move=move)


def _copy_rows(
    conn: sqlite3.Connection, txn: Txn, user: str, mailbox_id: int, uids: Sequence[int], dest_id: int, *, move: bool
) -> CopyResult:
    account_id, _, src_modseq = _owner(conn, mailbox_id)
    rows: list[tuple[int, int, str, int, float, int]] = []
    for chunk in _chunks(sorted(set(uids))):
        marks = ",".join("?" * len(chunk))
        rows.extend(
            conn.execute(
                "SELECT uid, blob_id, flagset, modseq, internaldate, size FROM messages"
                f" WHERE mailbox_id = ? AND uid IN ({marks}) ORDER BY uid",
                (mailbox_id, *chunk),
            ).fetchall()
        )
    dest = conn.execute(
        "SELECT uidvalidity, uidnext, highestmodseq, noselect FROM mailboxes WHERE id = ?", (dest_id,)
    ).fetchone()
    if dest is None or dest[3]:
        raise MailboxNotFound("no such mailbox")
    uidvalidity, uidnext, modseq, _ = dest
    if not rows:
        return CopyResult(uidvalidity, [])
    total = sum(r[5] for r in rows)
    if not move or mailbox_id == dest_id:
        _q_id, qbytes, qmsgs, ubytes, umsgs = _account(conn, user)
        if qmsgs and umsgs + len(rows) > qmsgs:
            raise QuotaExceeded("over the message quota", resource="messages")
        if qbytes and ubytes + total > qbytes:
            raise QuotaExceeded("over the storage quota", resource="bytes")
    modseq += 1
    pairs: list[tuple[int, int]] = []
    unseen = 0
    new_uids: list[int] = []
    for uid, blob_id, fid, _m, internaldate, size in rows:
        conn.execute(
            "INSERT INTO messages (mailbox_id, uid, blob_id, flagset, modseq, internaldate, size)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (dest_id, uidnext, blob_id, fid, modseq, internaldate, size),
        )
        conn.execute("UPDATE blobs SET refs = refs + 1 WHERE id = ?", (blob_id,))
        if SEEN not in txn.flag_set(conn, fid):
            unseen += 1
        pairs.append((uid, uidnext))
        new_uids.append(uidnext)
        uidnext += 1
    conn.execute(
        "UPDATE mailboxes SET uidnext = ?, highestmodseq = ?, messages = messages + ?, unseen = unseen + ?,"
        " size = size + ? WHERE id = ?",
        (uidnext, modseq, len(rows), unseen, total, dest_id),
    )
    conn.execute(
        "UPDATE accounts SET used_messages = used_messages + ?, used_bytes = used_bytes + ? WHERE id = ?",
        (len(rows), total, account_id),
    )
    txn.change(user, dest_id, "append", new_uids, modseq)
    if move:
        _remove_rows(
            conn,
            txn,
            account_id,
            user,
            mailbox_id,
            src_modseq + 1,
            [(uid, blob_id, text, size) for uid, blob_id, text, _m, _d, size in rows],
        )
    return CopyResult(uidvalidity, pairs)
