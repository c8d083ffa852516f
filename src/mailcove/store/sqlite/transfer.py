"""Export and restore of whole accounts and the queue (store/api.py, `mailcove db copy`).

Reads take a reader connection; writes are writer-thread operations like statements.py's. Restoring
writes rows with the source's UIDs, MODSEQs and counters as they are: it is a copy, not a
delivery, so no change is published and no quota applies."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from mailcove.core.errors import AccountNotFound, MailboxNotFound
from mailcove.store.api import QueueState, StoredMessage
from mailcove.store.frontend import served
from mailcove.store.sqlite.driver import Txn
from mailcove.store.sqlite.flags import FlagSets

SEEN = "\\Seen"
# (uid, flags, modseq, internaldate, size, inline data or None, blob file or None, info)
RestoreRow = tuple[int, frozenset[str], int, float, int, bytes | None, str | None, bytes]


def read_messages(
    conn: sqlite3.Connection,
    flagsets: FlagSets,
    blob_bytes: Callable[[str], bytes],
    mailbox_id: int,
    after_uid: int,
    limit: int,
) -> list[StoredMessage]:
    rows = conn.execute(
        "SELECT m.uid, m.flagset, m.modseq, m.internaldate, b.prefix, b.skip, b.path, b.data FROM messages m"
        " JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ? AND m.uid > ? ORDER BY m.uid LIMIT ?",
        (mailbox_id, after_uid, limit),
    ).fetchall()
    # The message as served (prefix and body): a restore stores it as one body.
    return [
        StoredMessage(
            uid, flagsets.get(conn, fid), modseq, when,
            served(prefix, skip, bytes(data or b"") if path is None else blob_bytes(path)),
        )
        for uid, fid, modseq, when, prefix, skip, path, data in rows
    ]


def read_queue_extras(
    conn: sqlite3.Connection, blob_bytes: Callable[[str], bytes], ids: Sequence[int]
) -> dict[int, tuple[frozenset[int], bytes]]:
    out: dict[int, tuple[frozenset[int], bytes]] = {}
    for qid in ids:
        prefix, skip, path, data = conn.execute(
            "SELECT q.prefix, b.skip, b.path, b.data FROM queue q JOIN blobs b ON b.id = q.blob_id WHERE q.id = ?",
            (qid,),
        ).fetchone()
        warned = frozenset(
            i for (i,) in conn.execute("SELECT idx FROM queue_rcpts WHERE queue_id = ? AND warned != 0", (qid,))
        )
        out[qid] = (warned, served(prefix, skip, bytes(data or b"") if path is None else blob_bytes(path)))
    return out


def restore_messages(conn: sqlite3.Connection, txn: Txn, user: str, name: str, rows: Sequence[RestoreRow]) -> None:
    acct = conn.execute("SELECT id FROM accounts WHERE name = ?", (user,)).fetchone()
    if acct is None:
        raise AccountNotFound(f"no such account: {user}")
    box = conn.execute(
        "SELECT id, uidnext, highestmodseq FROM mailboxes WHERE account_id = ? AND name = ?", (acct[0], name)
    ).fetchone()
    if box is None:
        raise MailboxNotFound(f"no such mailbox: {name}")
    mailbox_id, uidnext, hms = box
    for uid, _f, modseq, *_rest in rows:
        if not 0 < uid < uidnext or modseq > hms:
            raise ValueError(f"{name}: UID {uid} / MODSEQ {modseq} outside UIDNEXT {uidnext} / HIGHESTMODSEQ {hms}")
    inserts = []
    unseen = total = 0
    for uid, flags, modseq, when, size, data, path, info in rows:
        cur = conn.execute(
            "INSERT INTO blobs (size, refs, data, path, info) VALUES (?, 1, ?, ?, ?)", (size, data, path, info)
        )
        inserts.append((mailbox_id, uid, cur.lastrowid or 0, txn.flag_id(conn, flags), modseq, when, size))
        unseen += SEEN not in flags
        total += size
    try:
        conn.executemany(
            "INSERT INTO messages (mailbox_id, uid, blob_id, flagset, modseq, internaldate, size)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            inserts,
        )
    except sqlite3.IntegrityError:
        raise ValueError(f"{name}: a restored UID is already present") from None
    conn.execute(
        "UPDATE mailboxes SET messages = messages + ?, unseen = unseen + ?, size = size + ? WHERE id = ?",
        (len(rows), unseen, total, mailbox_id),
    )
    conn.execute(
        "UPDATE accounts SET used_bytes = used_bytes + ?, used_messages = used_messages + ? WHERE id = ?",
        (total, len(rows), acct[0]),
    )


def restore_queue(
    conn: sqlite3.Connection, txn: Txn, entry: QueueState, envelope_json: str, data: bytes | None, path: str | None
) -> int:
    item = entry.item
    cur = conn.execute(
        "INSERT INTO blobs (size, refs, data, path, info) VALUES (?, 1, ?, ?, ?)", (len(entry.data), data, path, b"")
    )
    cur = conn.execute(
        "INSERT INTO queue (blob_id, created, size, envelope) VALUES (?, ?, ?, ?)",
        (cur.lastrowid or 0, item.created, item.size, envelope_json),
    )
    queue_id = cur.lastrowid or 0
    conn.executemany(
        "INSERT INTO queue_rcpts (queue_id, idx, address, orcpt, notify, status, attempts, next_attempt, last_error,"
        " warned) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (queue_id, i, r.address, r.orcpt, ",".join(r.notify), r.status, r.attempts, r.next_attempt, r.last_error,
             int(i in entry.warned))
            for i, r in enumerate(item.recipients)
        ],
    )
    return queue_id
