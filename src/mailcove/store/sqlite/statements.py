"""SQLite's statements: the SQL of every statement the store's rules yield (store/rules/), and
the delivery, which runs inside the writer's batch with its batch cache.

Each handler takes the connection, the context (driver.Txn in the writer, driver.Context in a
reader) and the statement. The writer holds SQLite's one write lock for the whole batch, so the
"locked" statements lock nothing here. Rules raise core.errors exceptions, which roll back only
their own SAVEPOINT."""

from __future__ import annotations

import sqlite3
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mailcove.core.errors import AccountNotFound, DiskFull, MailboxNotFound
from mailcove.message.scanner import scan_prefixed
from mailcove.store.api import (
    NO_PREFIX,
    AppendResult,
    Mailbox,
    MailboxIndex,
    MessagePrefix,
    Usage,
)
from mailcove.store.frontend import served, served_range
from mailcove.store.rules import statements as S
from mailcove.store.rules.accounts import check_quota
from mailcove.store.sansio import Handlers
from mailcove.store.sqlite.driver import Context, Txn

Conn = sqlite3.Connection
HANDLERS: Handlers[Callable[[Conn, Any, Any], Any]] = Handlers()
on = HANDLERS.on

SEEN = "\\Seen"
DELETED = "\\Deleted"
CHUNK = 500  # values per IN (...) list
# The body of AddBody: (inline bytes or None, blob file or None, scanned MessageInfo bytes)
Body = tuple[bytes | None, str | None, bytes]

_MAILBOX_COLUMNS = (
    "m.id, a.name, m.name, m.uidvalidity, m.uidnext, m.highestmodseq, m.special_use, m.subscribed,"
    " m.noselect, m.messages, m.unseen, m.size FROM mailboxes m JOIN accounts a ON a.id = m.account_id"
)


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(values), CHUNK):
        yield values[i : i + CHUNK]


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _mailbox(row: Sequence[Any]) -> Mailbox:
    return Mailbox(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]), bool(row[8]), row[9], row[10], row[11]
    )


def _body(cx: Context, path: str | None, data: bytes | None) -> bytes:
    """A stored body, inline or in its file."""
    if path is None:
        return bytes(data) if data is not None else b""
    return cx.blobs.path(path).read_bytes()


# --- the driver's own ------------------------------------------------------------------------------


@on(S.Announce)
def _announce(c: Conn, txn: Txn, s: S.Announce) -> None:
    txn.change(s.user, s.mailbox_id, s.kind, s.uids, s.modseq)


@on(S.SpaceLow)
def _space_low(c: Conn, txn: Txn, s: S.SpaceLow) -> bool:
    return txn.disk_low


# --- accounts --------------------------------------------------------------------------------------

_ACCOUNT = "SELECT id, name, quota_bytes, quota_messages, used_bytes, used_messages FROM accounts"


@on(S.InsertAccount)
def _insert_account(c: Conn, txn: Txn, s: S.InsertAccount) -> int | None:
    row = c.execute(
        "INSERT INTO accounts (name, quota_bytes, quota_messages, last_uidvalidity) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (name) DO NOTHING RETURNING id",
        (s.user, s.quota_bytes, s.quota_messages, s.last_uidvalidity),
    ).fetchone()
    return row[0] if row else None


@on(S.LockAccount)
def _lock_account(c: Conn, txn: Txn, s: S.LockAccount) -> S.AccountRow | None:
    row = c.execute(f"{_ACCOUNT} WHERE name = ?", (s.user,)).fetchone()
    return S.AccountRow(*row) if row else None


@on(S.LockAccountOf)
def _lock_account_of(c: Conn, txn: Txn, s: S.LockAccountOf) -> S.AccountRow | None:
    row = c.execute(
        f"{_ACCOUNT} WHERE id = (SELECT account_id FROM mailboxes WHERE id = ?)", (s.mailbox_id,)
    ).fetchone()
    return S.AccountRow(*row) if row else None


@on(S.MailboxAccount)
def _mailbox_account(c: Conn, txn: Txn, s: S.MailboxAccount) -> int | None:
    row = c.execute("SELECT account_id FROM mailboxes WHERE id = ?", (s.mailbox_id,)).fetchone()
    return row[0] if row else None


@on(S.DeleteAccount)
def _delete_account(c: Conn, txn: Txn, s: S.DeleteAccount) -> None:
    c.executemany("DELETE FROM expunged WHERE mailbox_id = ?", [(i,) for i in s.mailbox_ids])
    c.execute("DELETE FROM mailboxes WHERE account_id = ?", (s.account_id,))
    c.execute("DELETE FROM accounts WHERE id = ?", (s.account_id,))


@on(S.SetQuota)
def _set_quota(c: Conn, txn: Txn, s: S.SetQuota) -> int:
    return c.execute(
        "UPDATE accounts SET quota_bytes = ?, quota_messages = ? WHERE name = ?", (s.max_bytes, s.max_messages, s.user)
    ).rowcount


@on(S.ChargeAccount)
def _charge_account(c: Conn, txn: Txn, s: S.ChargeAccount) -> None:
    c.execute(
        "UPDATE accounts SET used_messages = used_messages + ?, used_bytes = used_bytes + ? WHERE id = ?",
        (s.messages, s.bytes, s.account_id),
    )


@on(S.NextUidvalidity)
def _next_uidvalidity(c: Conn, txn: Txn, s: S.NextUidvalidity) -> int:
    return c.execute(
        "UPDATE accounts SET last_uidvalidity = max(?, last_uidvalidity + 1) WHERE id = ? RETURNING last_uidvalidity",
        (s.now, s.account_id),
    ).fetchone()[0]


@on(S.RaiseLastUidvalidity)
def _raise_last_uidvalidity(c: Conn, txn: Txn, s: S.RaiseLastUidvalidity) -> None:
    c.execute("UPDATE accounts SET last_uidvalidity = max(last_uidvalidity, ?) WHERE id = ?", (s.value, s.account_id))


@on(S.AccountExists)
def _account_exists(c: Conn, cx: Context, s: S.AccountExists) -> bool:
    return c.execute("SELECT 1 FROM accounts WHERE name = ?", (s.user,)).fetchone() is not None


@on(S.AccountNames)
def _account_names(c: Conn, cx: Context, s: S.AccountNames) -> list[str]:
    return [n for (n,) in c.execute("SELECT name FROM accounts ORDER BY name")]


@on(S.AccountUsage)
def _account_usage(c: Conn, cx: Context, s: S.AccountUsage) -> Usage | None:
    row = c.execute(
        "SELECT used_bytes, used_messages, quota_bytes, quota_messages FROM accounts WHERE name = ?", (s.user,)
    ).fetchone()
    return Usage(*row) if row else None


@on(S.AccountQuota)
def _account_quota(c: Conn, cx: Context, s: S.AccountQuota) -> Any:
    return c.execute("SELECT id, quota_bytes, quota_messages FROM accounts WHERE name = ?", (s.user,)).fetchone()


# --- mailboxes -------------------------------------------------------------------------------------


@on(S.FindMailbox)
def _find_mailbox(c: Conn, txn: Txn, s: S.FindMailbox) -> S.MailboxRow | None:
    row = c.execute(
        "SELECT id, uidvalidity, uidnext, highestmodseq, noselect, messages FROM mailboxes"
        " WHERE account_id = ? AND name = ?",
        (s.account_id, s.name),
    ).fetchone()
    return S.MailboxRow(*row) if row else None


@on(S.InsertMailbox)
def _insert_mailbox(c: Conn, txn: Txn, s: S.InsertMailbox) -> int:
    # Never a deleted mailbox's id again (schema migration 5).
    (mailbox_id,) = c.execute(
        "UPDATE mailbox_id_high SET last = max(last, (SELECT COALESCE(MAX(id), 0) FROM mailboxes)) + 1"
        " RETURNING last"
    ).fetchone()
    c.execute(
        "INSERT INTO mailboxes (id, account_id, name, uidvalidity, uidnext, highestmodseq, special_use, subscribed,"
        " noselect) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (mailbox_id, s.account_id, s.name, s.uidvalidity, s.uidnext, s.highestmodseq, s.special_use,
         int(s.subscribed), int(s.noselect)),
    )
    return int(mailbox_id)


@on(S.ReviveMailbox)
def _revive_mailbox(c: Conn, txn: Txn, s: S.ReviveMailbox) -> None:
    c.execute(
        "UPDATE mailboxes SET noselect = 0, uidvalidity = ?, special_use = COALESCE(?, special_use) WHERE id = ?",
        (s.uidvalidity, s.special_use, s.mailbox_id),
    )


@on(S.LockMailboxes)
def _lock_mailboxes(c: Conn, txn: Txn, s: S.LockMailboxes) -> dict[int, S.MailboxLock]:
    return {
        r[0]: S.MailboxLock(r[1], r[2], bool(r[3]))
        for r in c.execute(
            f"SELECT id, uidvalidity, highestmodseq, noselect FROM mailboxes WHERE id IN ({_marks(s.ids)})", s.ids
        )
    }


@on(S.LockMailbox)
def _lock_mailbox(c: Conn, txn: Txn, s: S.LockMailbox) -> S.Owner | None:
    row = c.execute(
        "SELECT a.id, a.name, m.highestmodseq FROM mailboxes m JOIN accounts a ON a.id = m.account_id WHERE m.id = ?",
        (s.mailbox_id,),
    ).fetchone()
    return S.Owner(*row) if row else None


@on(S.AccountMailboxes)
def _account_mailboxes(c: Conn, txn: Txn, s: S.AccountMailboxes) -> list[int]:
    return [i for (i,) in c.execute("SELECT id FROM mailboxes WHERE account_id = ? ORDER BY id", (s.account_id,))]


@on(S.Inferiors)
def _inferiors(c: Conn, txn: Txn, s: S.Inferiors) -> list[Any]:
    return c.execute(
        "SELECT id, name FROM mailboxes WHERE account_id = ? AND substr(name, 1, ?) = ? ORDER BY id"
        + (" LIMIT 1" if s.first else ""),
        (s.account_id, len(s.name) + 1, s.name + "/"),
    ).fetchall()


@on(S.RenameMailbox)
def _rename_mailbox(c: Conn, txn: Txn, s: S.RenameMailbox) -> None:
    c.execute("UPDATE mailboxes SET name = ?, uidvalidity = ? WHERE id = ?", (s.name, s.uidvalidity, s.mailbox_id))


@on(S.SetSubscribed)
def _set_subscribed(c: Conn, txn: Txn, s: S.SetSubscribed) -> int:
    return c.execute(
        "UPDATE mailboxes SET subscribed = ? WHERE account_id = ? AND name = ?",
        (int(s.subscribed), s.account_id, s.name),
    ).rowcount


@on(S.MakeNoselect)
def _make_noselect(c: Conn, txn: Txn, s: S.MakeNoselect) -> None:
    c.execute("UPDATE mailboxes SET noselect = 1, messages = 0, unseen = 0, size = 0 WHERE id = ?", (s.mailbox_id,))


@on(S.DeleteMailbox)
def _delete_mailbox(c: Conn, txn: Txn, s: S.DeleteMailbox) -> None:
    c.execute("DELETE FROM mailboxes WHERE id = ?", (s.mailbox_id,))


@on(S.ResetUidvalidity)
def _reset_uidvalidity(c: Conn, txn: Txn, s: S.ResetUidvalidity) -> None:
    c.execute("UPDATE mailboxes SET uidvalidity = ?, uidnext = 1 WHERE id = ?", (s.uidvalidity, s.mailbox_id))
    c.execute("DELETE FROM expunged WHERE mailbox_id = ?", (s.mailbox_id,))


@on(S.ClearExpunged)
def _clear_expunged(c: Conn, txn: Txn, s: S.ClearExpunged) -> None:
    c.execute("DELETE FROM expunged WHERE mailbox_id = ?", (s.mailbox_id,))


@on(S.AdjustMailbox)
def _adjust_mailbox(c: Conn, txn: Txn, s: S.AdjustMailbox) -> None:
    c.execute(
        "UPDATE mailboxes SET uidnext = max(uidnext, ?), highestmodseq = max(highestmodseq, ?),"
        " messages = messages + ?, unseen = unseen + ?, size = size + ? WHERE id = ?",
        (s.uidnext, s.highestmodseq, s.messages, s.unseen, s.size, s.mailbox_id),
    )


@on(S.AllocateUids)
def _allocate_uids(c: Conn, txn: Txn, s: S.AllocateUids) -> tuple[int, int]:
    first, modseq = c.execute(
        "UPDATE mailboxes SET uidnext = uidnext + ?1, highestmodseq = highestmodseq + 1, messages = messages + ?1,"
        " unseen = unseen + ?2, size = size + ?3 WHERE id = ?4 RETURNING uidnext - ?1, highestmodseq",
        (s.count, s.unseen, s.size, s.mailbox_id),
    ).fetchone()
    return first, modseq


@on(S.Mailboxes)
def _mailboxes(c: Conn, cx: Context, s: S.Mailboxes) -> list[Mailbox]:
    return [_mailbox(r) for r in c.execute(f"SELECT {_MAILBOX_COLUMNS} WHERE a.name = ? ORDER BY m.name", (s.user,))]


@on(S.MailboxByName)
def _mailbox_by_name(c: Conn, cx: Context, s: S.MailboxByName) -> Mailbox | None:
    row = c.execute(f"SELECT {_MAILBOX_COLUMNS} WHERE a.name = ? AND m.name = ?", (s.user, s.name)).fetchone()
    return _mailbox(row) if row else None


@on(S.MailboxById)
def _mailbox_by_id(c: Conn, cx: Context, s: S.MailboxById) -> Mailbox | None:
    row = c.execute(f"SELECT {_MAILBOX_COLUMNS} WHERE m.id = ?", (s.mailbox_id,)).fetchone()
    return _mailbox(row) if row else None


@on(S.MailboxStates)
def _mailbox_states(c: Conn, cx: Context, s: S.MailboxStates) -> list[Any]:
    return c.execute(
        "SELECT id, name, uidvalidity, uidnext, highestmodseq, special_use, subscribed, noselect FROM mailboxes"
        " WHERE account_id = ? ORDER BY name",
        (s.account_id,),
    ).fetchall()


@on(S.ExpungedRecords)
def _expunged_records(c: Conn, cx: Context, s: S.ExpungedRecords) -> list[Any]:
    return c.execute("SELECT uid, modseq FROM expunged WHERE mailbox_id = ? ORDER BY uid", (s.mailbox_id,)).fetchall()


@on(S.ExpungedSince)
def _expunged_since(c: Conn, cx: Context, s: S.ExpungedSince) -> list[int]:
    return [
        u
        for (u,) in c.execute(
            "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid", (s.mailbox_id, s.modseq)
        )
    ]


# --- messages and their bodies ---------------------------------------------------------------------


@on(S.AddBody)
def _add_body(c: Conn, txn: Txn, s: S.AddBody) -> int:
    data, path, info = s.body
    cur = c.execute(
        "INSERT INTO blobs (size, refs, data, path, info) VALUES (?, ?, ?, ?, ?)", (s.size, s.refs, data, path, info)
    )
    return cur.lastrowid or 0


@on(S.AddBlobRefs)
def _add_blob_refs(c: Conn, txn: Txn, s: S.AddBlobRefs) -> None:
    c.executemany("UPDATE blobs SET refs = refs + ? WHERE id = ?", [(n, b) for b, n in s.counts.items()])


@on(S.ReleaseBlobs)
def _release_blobs(c: Conn, txn: Txn, s: S.ReleaseBlobs) -> None:
    ids = sorted(s.counts)
    c.executemany("UPDATE blobs SET refs = refs - ? WHERE id = ?", [(s.counts[b], b) for b in ids])
    for chunk in _chunks(ids):
        gone = c.execute(f"SELECT id, path FROM blobs WHERE id IN ({_marks(chunk)}) AND refs <= 0", chunk).fetchall()
        c.executemany("DELETE FROM blobs WHERE id = ?", [(b,) for b, _path in gone])
        _forget_texts(c, [b for b, _path in gone])
        txn.remove_blobs.extend(path for _b, path in gone if path)


@on(S.InsertMessages)
def _insert_messages(c: Conn, txn: Txn, s: S.InsertMessages) -> None:
    fid = txn.flag_id
    c.executemany(
        "INSERT INTO messages (mailbox_id, uid, blob_id, flagset, modseq, internaldate, size, pop3_uidl)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(s.mailbox_id, uid, blob, fid(c, flags), ms, when, size, uidl)
         for uid, blob, flags, ms, when, size, uidl in s.rows],
    )


@on(S.CopyMessages)
def _copy_messages(c: Conn, txn: Txn, s: S.CopyMessages) -> None:
    c.executemany(
        "INSERT INTO messages (mailbox_id, uid, blob_id, flagset, modseq, internaldate, size)"
        " SELECT ?, ?, blob_id, flagset, ?, internaldate, size FROM messages WHERE mailbox_id = ? AND uid = ?",
        [(s.dest_id, new, s.modseq, s.mailbox_id, old) for old, new in zip(s.uids, s.new_uids, strict=True)],
    )


@on(S.MessageUids)
def _message_uids(c: Conn, txn: Txn, s: S.MessageUids) -> list[int]:
    return [u for (u,) in c.execute("SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid", (s.mailbox_id,))]


def _rows_by_uid(c: Conn, columns: str, mailbox_id: int, uids: Sequence[int]) -> Iterable[Any]:
    for chunk in _chunks(uids):
        yield from c.execute(
            f"SELECT {columns} FROM messages WHERE mailbox_id = ? AND uid IN ({_marks(chunk)}) ORDER BY uid",
            (mailbox_id, *chunk),
        ).fetchall()


@on(S.MessageRows)
def _message_rows(c: Conn, txn: Txn, s: S.MessageRows) -> list[S.MessageRow]:
    fs = txn.flag_set
    return [
        S.MessageRow(uid, blob, fs(c, fid), size)
        for uid, blob, fid, size in _rows_by_uid(c, "uid, blob_id, flagset, size", s.mailbox_id, s.uids)
    ]


@on(S.MessageFlags)
def _message_flags(c: Conn, txn: Txn, s: S.MessageFlags) -> list[tuple[int, frozenset[str], int]]:
    fs = txn.flag_set
    return [(uid, fs(c, fid), ms) for uid, fid, ms in _rows_by_uid(c, "uid, flagset, modseq", s.mailbox_id, s.uids)]


@on(S.SetFlags)
def _set_flags(c: Conn, txn: Txn, s: S.SetFlags) -> None:
    fid = txn.flag_id
    c.executemany(
        "UPDATE messages SET flagset = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?",
        [(fid(c, flags), s.modseq, s.mailbox_id, uid) for uid, flags in s.changes],
    )


@on(S.DeleteMessages)
def _delete_messages(c: Conn, txn: Txn, s: S.DeleteMessages) -> list[S.MessageRow]:
    fs = txn.flag_set
    if s.uids is None:
        found = [
            S.MessageRow(uid, blob, flags, size)
            for uid, blob, fid, size in c.execute(
                "SELECT uid, blob_id, flagset, size FROM messages WHERE mailbox_id = ? AND flagset IN"
                " (SELECT id FROM flagsets WHERE instr(flags, ?) > 0)",
                (s.mailbox_id, DELETED),
            ).fetchall()
            if DELETED in (flags := fs(c, fid))
        ]
    else:
        found = [
            S.MessageRow(uid, blob, fs(c, fid), size)
            for uid, blob, fid, size in _rows_by_uid(c, "uid, blob_id, flagset, size", s.mailbox_id, s.uids)
        ]
    c.executemany("DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", [(s.mailbox_id, r.uid) for r in found])
    return found


@on(S.DeleteAllMessages)
def _delete_all_messages(c: Conn, txn: Txn, s: S.DeleteAllMessages) -> list[Any]:
    groups = c.execute(
        "SELECT blob_id, count(*), sum(size) FROM messages WHERE mailbox_id = ? GROUP BY blob_id", (s.mailbox_id,)
    ).fetchall()
    c.execute("DELETE FROM messages WHERE mailbox_id = ?", (s.mailbox_id,))
    return groups


@on(S.RecordExpunged)
def _record_expunged(c: Conn, txn: Txn, s: S.RecordExpunged) -> None:
    c.executemany(
        "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)",
        [(s.mailbox_id, uid, modseq) for uid, modseq in s.records],
    )


@on(S.PresentUids)
def _present_uids(c: Conn, txn: Txn, s: S.PresentUids) -> int:
    return sum(
        c.execute(
            f"SELECT count(*) FROM messages WHERE mailbox_id = ? AND uid IN ({_marks(chunk)})", (s.mailbox_id, *chunk)
        ).fetchone()[0]
        for chunk in _chunks(s.uids)
    )


@on(S.Index)
def _index(c: Conn, cx: Context, s: S.Index) -> MailboxIndex:
    rows = c.execute(
        "SELECT uid, flagset, modseq FROM messages WHERE mailbox_id = ? ORDER BY uid", (s.mailbox_id,)
    ).fetchall()
    fids = [r[1] for r in rows]
    table = cx.flagsets.table(c, fids)
    return MailboxIndex(array("Q", [r[0] for r in rows]), [table[f] for f in fids], array("Q", [r[2] for r in rows]))


@on(S.MessageMetas)
def _message_metas(c: Conn, cx: Context, s: S.MessageMetas) -> list[Any]:
    out = []
    for chunk in _chunks(s.uids):
        for uid, fid, ms, idate, size, info in c.execute(
            "SELECT m.uid, m.flagset, m.modseq, m.internaldate, m.size, b.info FROM messages m"
            f" JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ? AND m.uid IN ({_marks(chunk)}) ORDER BY m.uid",
            (s.mailbox_id, *chunk),
        ).fetchall():
            out.append((uid, cx.flag_set(c, fid), ms, idate, size, info))
    return out


@on(S.MessageSlice)
def _message_slice(c: Conn, cx: Context, s: S.MessageSlice) -> tuple[bytes | None, bytes] | None:
    # substr() on a BLOB slices bytes (1-based), so an inline body is never copied whole; where
    # the range lies in the body (frontend.served_range) is computed in SQL, the prefix's length
    # being unknown until the row is read.
    offset = "b.skip + max(?1 - ifnull(length(b.prefix), 0), 0) + 1"
    if s.length is None:
        sql = f"SELECT b.prefix, b.skip, b.path, substr(b.data, {offset}) FROM messages m"
        args: tuple[int, ...] = (s.start,)
    else:
        count = "max(0, ?1 + ?2 - max(?1, ifnull(length(b.prefix), 0)))"
        sql = f"SELECT b.prefix, b.skip, b.path, substr(b.data, {offset}, {count}) FROM messages m"
        args = (s.start, s.length)
    row = c.execute(
        sql + f" JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ?{len(args) + 1} AND m.uid = ?{len(args) + 2}",
        (*args, s.mailbox_id, s.uid),
    ).fetchone()
    if row is None:
        return None
    prefix, skip, path, data = row
    if path is None:
        return prefix, bytes(data) if data is not None else b""
    at, n = served_range(len(prefix or b""), skip, s.start, s.length)
    with open(cx.blobs.path(path), "rb") as f:
        f.seek(at)
        return prefix, f.read() if n is None else f.read(n)


@on(S.ServedMessages)
def _served_messages(c: Conn, cx: Context, s: S.ServedMessages) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for chunk in _chunks(s.uids):
        for uid, prefix, skip, path, data in c.execute(
            "SELECT m.uid, b.prefix, b.skip, b.path, b.data FROM messages m JOIN blobs b ON b.id = m.blob_id"
            f" WHERE m.mailbox_id = ? AND m.uid IN ({_marks(chunk)})",
            (s.mailbox_id, *chunk),
        ):
            out[uid] = served(prefix, skip, _body(cx, path, data))
    return out



# --- the full-text index (rules/textindex.py) ------------------------------------------------------
# text_fts: the index text under the trigram tokenizer, detail=none (no positions: a needle's
# trigrams are looked up as an AND, which narrows as well as a phrase would for SEARCH, whose own
# check follows, and keeps the index at about the text's size). hangul_fts: the distinct pairs
# of adjacent Hangul syllables as words, for two-syllable needles, shorter than a trigram. The
# rowid of both is the blob's id; blobs.indexed says whether the body's text is in.

TRIGRAM_TERMS = 24  # a long needle is looked up by this many of its trigrams, spread over it


def _forget_texts(c: Conn, blob_ids: Sequence[int]) -> None:
    if blob_ids:
        rows = [(b,) for b in blob_ids]
        c.executemany("DELETE FROM text_fts WHERE rowid = ?", rows)
        c.executemany("DELETE FROM hangul_fts WHERE rowid = ?", rows)


def _fts_string(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def trigram_query(needle: str) -> str | None:
    """An FTS5 query for the bodies whose text holds every trigram of `needle`; None when it has
    none (under 3 characters: the trigram tokenizer would answer with nothing at all)."""
    grams = list(dict.fromkeys(needle[i : i + 3] for i in range(len(needle) - 2)))
    if not grams:
        return None
    if len(grams) > TRIGRAM_TERMS:
        step = (len(grams) - 1) / (TRIGRAM_TERMS - 1)
        grams = [grams[round(i * step)] for i in range(TRIGRAM_TERMS)]
    return " AND ".join(_fts_string(g) for g in grams)


@on(S.UnindexedBodies)
def _unindexed_bodies(c: Conn, cx: Context, s: S.UnindexedBodies) -> list[Any]:
    out = []
    for blob_id, path, data, prefix, skip, info in c.execute(
        "SELECT id, path, data, prefix, skip, info FROM blobs WHERE indexed = 0 AND id > ? ORDER BY id LIMIT ?",
        (s.after, s.limit),
    ).fetchall():
        if not info:
            body = b""  # a queue-only body: nothing to search
        elif path is None:
            body = served(prefix, skip, bytes(data or b""))[: s.max_bytes]
        else:
            try:
                with open(cx.blobs.path(path), "rb") as f:
                    f.seek(skip)
                    body = (prefix or b"") + f.read(max(0, s.max_bytes - len(prefix or b"")))
            except OSError:  # deleted since this snapshot, or unreadable: SEARCH cannot read it either
                body = info = b""
        # SQLite hands a deleted body's id out again: the token is the row as read.
        out.append((blob_id, (path, data, prefix, skip), body, info))
    return out


@on(S.IndexTexts)
def _index_texts(c: Conn, txn: Txn, s: S.IndexTexts) -> int:
    done = 0
    for blob_id, (path, data, prefix, skip), text, grams in s.rows:
        if c.execute(
            "UPDATE blobs SET indexed = 1 WHERE id = ? AND indexed = 0 AND path IS ? AND data IS ? AND prefix IS ?"
            " AND skip = ?",
            (blob_id, path, data, prefix, skip),
        ).rowcount != 1:
            continue
        done += 1
        if text:
            c.execute("INSERT INTO text_fts (rowid, text) VALUES (?, ?)", (blob_id, text))
        if grams:
            c.execute("INSERT INTO hangul_fts (rowid, grams) VALUES (?, ?)", (blob_id, grams))
    return done


@on(S.TextCandidates)
def _text_candidates(c: Conn, cx: Context, s: S.TextCandidates) -> list[int] | None:
    if s.hangul_pair:
        table, query = "hangul_fts", _fts_string(s.needle)
    else:
        table, found = "text_fts", trigram_query(s.needle)
        if found is None:
            return None
        query = found
    return [uid for (uid,) in c.execute(
        f"SELECT uid FROM messages WHERE mailbox_id = ? AND blob_id IN (SELECT rowid FROM {table} WHERE {table} MATCH ?"
        " UNION ALL SELECT id FROM blobs WHERE indexed = 0)",
        (s.mailbox_id, query),
    )]


@on(S.IndexProgress)
def _index_progress(c: Conn, cx: Context, s: S.IndexProgress) -> tuple[int, int]:
    waiting = c.execute("SELECT count(*) FROM blobs WHERE indexed = 0").fetchone()[0]
    return waiting, c.execute("SELECT count(*) FROM blobs").fetchone()[0]


@on(S.ResetIndex)
def _reset_index(c: Conn, txn: Txn, s: S.ResetIndex) -> int:
    ids = [b for (b,) in c.execute(
        "SELECT DISTINCT m.blob_id FROM messages m JOIN mailboxes x ON x.id = m.mailbox_id WHERE x.account_id = ?",
        (s.account_id,),
    )]
    _forget_texts(c, ids)
    c.executemany("UPDATE blobs SET indexed = 0 WHERE id = ?", [(b,) for b in ids])
    return len(ids)

@on(S.MessagePath)
def _message_path(c: Conn, cx: Context, s: S.MessagePath) -> Path | None:
    row = c.execute(
        "SELECT b.path FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ? AND m.uid = ?",
        (s.mailbox_id, s.uid),
    ).fetchone()
    return cx.blobs.path(row[0]) if row and row[0] else None


@on(S.StoredMessages)
def _stored_messages(c: Conn, cx: Context, s: S.StoredMessages) -> list[Any]:
    # The message as served (prefix and body): a restore stores it as one body.
    return [
        (uid, cx.flag_set(c, fid), modseq, when, served(prefix, skip, _body(cx, path, data)), uidl)
        for uid, fid, modseq, when, prefix, skip, path, data, uidl in c.execute(
            "SELECT m.uid, m.flagset, m.modseq, m.internaldate, b.prefix, b.skip, b.path, b.data, m.pop3_uidl"
            " FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ? AND m.uid > ?"
            " ORDER BY m.uid LIMIT ?",
            (s.mailbox_id, s.after_uid, s.limit),
        ).fetchall()
    ]


@on(S.Pop3Uidls)
def _pop3_uidls(c: Conn, cx: Context, s: S.Pop3Uidls) -> list[tuple[int, str]]:
    return c.execute(
        "SELECT uid, pop3_uidl FROM messages WHERE mailbox_id = ? AND uid >= ? AND pop3_uidl IS NOT NULL"
        " ORDER BY uid",
        (s.mailbox_id, s.min_uid),
    ).fetchall()


# --- the outbound queue ----------------------------------------------------------------------------


@on(S.InsertQueueEntry)
def _insert_queue_entry(c: Conn, txn: Txn, s: S.InsertQueueEntry) -> int:
    item = s.entry.item
    cur = c.execute(
        "INSERT INTO queue (blob_id, created, size, envelope) VALUES (?, ?, ?, ?)",
        (s.blob_id, item.created, item.size, s.envelope_json),
    )
    queue_id = cur.lastrowid or 0
    c.executemany(
        "INSERT INTO queue_rcpts (queue_id, idx, address, orcpt, notify, status, attempts, next_attempt, last_error,"
        " warned) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (queue_id, i, r.address, r.orcpt, ",".join(r.notify), r.status, r.attempts, r.next_attempt, r.last_error,
             int(i in s.entry.warned))
            for i, r in enumerate(item.recipients)
        ],
    )
    return queue_id


@on(S.DeleteQueueEntry)
def _delete_queue_entry(c: Conn, txn: Txn, s: S.DeleteQueueEntry) -> int | None:
    row = c.execute("SELECT blob_id FROM queue WHERE id = ?", (s.queue_id,)).fetchone()
    if row is None:
        return None
    c.execute("DELETE FROM queue_rcpts WHERE queue_id = ?", (s.queue_id,))
    c.execute("DELETE FROM queue WHERE id = ?", (s.queue_id,))
    return row[0]


@on(S.ClaimRecipients)
def _claim_recipients(c: Conn, txn: Txn, s: S.ClaimRecipients) -> list[Any]:
    rows = c.execute(
        "SELECT r.queue_id, r.idx, r.address, r.orcpt, r.notify, r.attempts, r.warned, q.created, q.envelope"
        " FROM queue_rcpts r JOIN queue q ON q.id = r.queue_id"
        " WHERE r.status = 'queued' AND r.next_attempt <= ? ORDER BY r.next_attempt, r.queue_id, r.idx LIMIT ?",
        (s.now, s.limit),
    ).fetchall()
    c.executemany(
        "UPDATE queue_rcpts SET next_attempt = ?, lease = ? WHERE queue_id = ? AND idx = ?",
        [(s.until, s.lease, r[0], r[1]) for r in rows],
    )
    return rows


@on(S.RecordAttempts)
def _record_attempts(c: Conn, txn: Txn, s: S.RecordAttempts) -> set[int]:
    touched: set[int] = set()
    for queue_id, idx, lease, status, next_attempt, error, warned in s.outcomes:
        cur = c.execute(
            "UPDATE queue_rcpts SET status = ?, next_attempt = ?, last_error = ?, warned = ?,"
            " attempts = attempts + 1, lease = NULL WHERE queue_id = ? AND idx = ? AND lease = ?",
            (status, next_attempt, error, int(warned), queue_id, idx, lease),
        )
        if cur.rowcount:
            touched.add(queue_id)
    return touched


@on(S.QueuePending)
def _queue_pending(c: Conn, txn: Txn, s: S.QueuePending) -> bool:
    return c.execute(
        "SELECT 1 FROM queue_rcpts WHERE queue_id = ? AND status IN ('queued', 'held') LIMIT 1", (s.queue_id,)
    ).fetchone() is not None


@on(S.QueueExists)
def _queue_exists(c: Conn, txn: Txn, s: S.QueueExists) -> bool:
    return c.execute("SELECT 1 FROM queue WHERE id = ?", (s.queue_id,)).fetchone() is not None


@on(S.RetryRecipients)
def _retry_recipients(c: Conn, txn: Txn, s: S.RetryRecipients) -> int:
    if s.queue_id is None:
        return c.execute(
            "UPDATE queue_rcpts SET next_attempt = ?, lease = NULL WHERE status = 'queued'", (s.now,)
        ).rowcount
    return c.execute(
        "UPDATE queue_rcpts SET next_attempt = ?, lease = NULL WHERE queue_id = ? AND status = 'queued'",
        (s.now, s.queue_id),
    ).rowcount


@on(S.QueueEntries)
def _queue_entries(c: Conn, cx: Context, s: S.QueueEntries) -> list[Any]:
    if s.queue_id is None:
        return c.execute("SELECT id, created, size, envelope FROM queue ORDER BY id").fetchall()
    return c.execute("SELECT id, created, size, envelope FROM queue WHERE id = ?", (s.queue_id,)).fetchall()


_RCPT_COLUMNS = "queue_id, idx, address, orcpt, notify, status, attempts, next_attempt, last_error, warned"


@on(S.QueueRecipients)
def _queue_recipients(c: Conn, cx: Context, s: S.QueueRecipients) -> list[Any]:
    if s.queue_id is None:
        return c.execute(f"SELECT {_RCPT_COLUMNS} FROM queue_rcpts ORDER BY queue_id, idx").fetchall()
    return c.execute(
        f"SELECT {_RCPT_COLUMNS} FROM queue_rcpts WHERE queue_id = ? ORDER BY idx", (s.queue_id,)
    ).fetchall()


@on(S.QueueIdsAfter)
def _queue_ids_after(c: Conn, cx: Context, s: S.QueueIdsAfter) -> list[int]:
    return [i for (i,) in c.execute("SELECT id FROM queue WHERE id > ? ORDER BY id LIMIT ?", (s.after_id, s.limit))]


@on(S.QueueMessage)
def _queue_message(c: Conn, cx: Context, s: S.QueueMessage) -> bytes | None:
    row = c.execute(
        "SELECT q.prefix, b.skip, b.path, b.data FROM queue q JOIN blobs b ON b.id = q.blob_id WHERE q.id = ?",
        (s.queue_id,),
    ).fetchone()
    if row is None:
        return None
    prefix, skip, path, data = row
    return served(prefix, skip, _body(cx, path, data))


@on(S.QueueSize)
def _queue_size(c: Conn, cx: Context, s: S.QueueSize) -> int:
    return c.execute("SELECT count(DISTINCT queue_id) FROM queue_rcpts WHERE status = 'queued'").fetchone()[0]


# --- leases ----------------------------------------------------------------------------------------
# The writer's transaction holds SQLite's write lock, so two `mailcove serve` on one data dir agree
# on who holds a lease; the clock is this machine's.


@on(S.AcquireLease)
def _acquire_lease(c: Conn, txn: Txn, s: S.AcquireLease) -> bool:
    now = time.time()
    return c.execute(
        "INSERT INTO leases (name, owner, expires) VALUES (?1, ?2, ?3)"
        " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires"
        " WHERE leases.owner = excluded.owner OR leases.expires <= ?4 RETURNING 1",
        (s.name, s.owner, now + s.ttl, now),
    ).fetchone() is not None


@on(S.RenewLease)
def _renew_lease(c: Conn, txn: Txn, s: S.RenewLease) -> bool:
    return c.execute(
        "UPDATE leases SET expires = ? WHERE name = ? AND owner = ?", (time.time() + s.ttl, s.name, s.owner)
    ).rowcount == 1


@on(S.ReleaseLease)
def _release_lease(c: Conn, txn: Txn, s: S.ReleaseLease) -> None:
    c.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (s.name, s.owner))


# --- deliveries: one statement, on the writer's batch cache ----------------------------------------


def _cached_account(conn: Conn, txn: Txn, user: str) -> list[int]:
    row = txn.cache.accounts.get(user)
    if row is None:
        found = conn.execute(
            "SELECT id, quota_bytes, quota_messages, used_bytes, used_messages FROM accounts WHERE name = ?", (user,)
        ).fetchone()
        if found is None:
            raise AccountNotFound(f"no such account: {user}")
        row = txn.cache.accounts[user] = list(found)
    return row


def _cached_mailbox(conn: Conn, txn: Txn, account_id: int, name: str) -> list[int] | None:
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


def deliver(
    conn: Conn,
    txn: Txn,
    targets: Sequence[tuple[str, str, frozenset[str]]],
    size: int,
    data: bytes | None,
    path: str | None,
    info: bytes | None,
    internaldate: float,
    fallback_to_inbox: bool,
    outbound: tuple[str, list[tuple[str, str | None, str]]] | None = None,
    prefix: MessagePrefix = NO_PREFIX,
) -> tuple[list[AppendResult], int | None]:
    """Local copies plus, when `outbound` is (envelope JSON, [(address, orcpt, notify)]), one
    queue entry for the remote recipients: one blob, one transaction. `size` is the body's; a
    local copy's size (and quota charge) is its prefix's plus the body's from `prefix.skip` on.
    `info` None: scan `data` here (the writer holds the GIL either way, and the event loop stays
    free); a message only for the queue is never read through IMAP, so it is not scanned."""
    if txn.disk_low:
        raise DiskFull("free disk space is below the configured floor")
    if info is None:
        info = scan_prefixed(prefix.local, data or b"", prefix.skip).to_bytes() if targets else b""
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
        check_quota(user, qbytes, qmsgs, ubytes, umsgs, n, n * size)
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
    inserts: list[tuple[int, int, int, int, int, float, int]] = []
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
