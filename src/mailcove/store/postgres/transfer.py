"""Export and restore of whole accounts and the queue (store/api.py, `mailcove db copy`).

Restoring writes rows with the source's UIDs, MODSEQs and counters as they are: it is a copy,
not a delivery, so no change is published and no quota applies (as in sqlite/transfer.py)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from mailcove.core.errors import AccountNotFound, MailboxNotFound
from mailcove.store.api import QueueState, StoredMessage
from mailcove.store.postgres.driver import Txn
from mailcove.store.postgres.flags import FlagCache, flags_text
from mailcove.store.postgres.statements import insert_body, read_served

SEEN = "\\Seen"
# (uid, flags, modseq, internaldate, data, info)
RestoreRow = tuple[int, frozenset[str], int, float, bytes, bytes]


async def read_messages(
    conn: asyncpg.Connection, cache: FlagCache, mailbox_id: int, after_uid: int, limit: int
) -> list[StoredMessage]:
    rows = await conn.fetch(
        "SELECT m.uid, m.flags, m.modseq, m.internaldate, b.id, b.chunked, b.size,"
        " CASE WHEN b.chunked THEN NULL ELSE b.data END, b.prefix, b.skip FROM messages m"
        " JOIN blobs b ON b.id = m.blob_id"
        " WHERE m.mailbox_id = $1 AND m.uid > $2 ORDER BY m.uid LIMIT $3",
        mailbox_id,
        after_uid,
        limit,
    )
    return [
        StoredMessage(
            uid, cache.get(fl), modseq, when, await read_served(conn, blob_id, chunked, size, data, prefix, skip)
        )
        for uid, fl, modseq, when, blob_id, chunked, size, data, prefix, skip in rows
    ]


async def read_queue_extras(conn: asyncpg.Connection, ids: Sequence[int]) -> dict[int, tuple[frozenset[int], bytes]]:
    out: dict[int, tuple[frozenset[int], bytes]] = {}
    for qid in ids:
        blob_id, chunked, size, data, prefix, skip = await conn.fetchrow(
            "SELECT b.id, b.chunked, b.size, CASE WHEN b.chunked THEN NULL ELSE b.data END, q.prefix, b.skip"
            " FROM queue q JOIN blobs b ON b.id = q.blob_id WHERE q.id = $1",
            qid,
        )
        warned = frozenset(
            r[0] for r in await conn.fetch("SELECT idx FROM queue_rcpts WHERE queue_id = $1 AND warned", qid)
        )
        out[qid] = (warned, await read_served(conn, blob_id, chunked, size, data, prefix, skip))
    return out


async def restore_messages(
    conn: asyncpg.Connection, txn: Txn, user: str, name: str, rows: Sequence[RestoreRow], inline_max: int
) -> None:
    account_id = await conn.fetchval("SELECT id FROM accounts WHERE name = $1 FOR UPDATE", user)
    if account_id is None:
        raise AccountNotFound(f"no such account: {user}")
    box = await conn.fetchrow(
        "SELECT id, uidnext, highestmodseq FROM mailboxes WHERE account_id = $1 AND name = $2 FOR UPDATE",
        account_id,
        name,
    )
    if box is None:
        raise MailboxNotFound(f"no such mailbox: {name}")
    mailbox_id, uidnext, hms = box
    for uid, _f, modseq, *_rest in rows:
        if not 0 < uid < uidnext or modseq > hms:
            raise ValueError(f"{name}: UID {uid} / MODSEQ {modseq} outside UIDNEXT {uidnext} / HIGHESTMODSEQ {hms}")
    present = await conn.fetchval(
        "SELECT count(*) FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[])",
        mailbox_id,
        [r[0] for r in rows],
    )
    if present or len({r[0] for r in rows}) != len(rows):
        raise ValueError(f"{name}: a restored UID is already present")
    unseen = total = 0
    for uid, flags, modseq, when, data, info in rows:
        blob_id = await insert_body(conn, data, info, 1, inline_max)
        await conn.execute(
            "INSERT INTO messages (mailbox_id, uid, blob_id, flags, modseq, internaldate, size)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            mailbox_id,
            uid,
            blob_id,
            flags_text(flags),
            modseq,
            when,
            len(data),
        )
        unseen += SEEN not in flags
        total += len(data)
    await conn.execute(
        "UPDATE mailboxes SET messages = messages + $2, unseen = unseen + $3, size = size + $4 WHERE id = $1",
        mailbox_id,
        len(rows),
        unseen,
        total,
    )
    await conn.execute(
        "UPDATE accounts SET used_bytes = used_bytes + $2, used_messages = used_messages + $3 WHERE id = $1",
        account_id,
        total,
        len(rows),
    )


async def restore_queue(
    conn: asyncpg.Connection, txn: Txn, entry: QueueState, envelope_json: str, inline_max: int
) -> int:
    item = entry.item
    blob_id = await insert_body(conn, entry.data, b"", 1, inline_max)
    queue_id = await conn.fetchval(
        "INSERT INTO queue (blob_id, created, size, envelope) VALUES ($1, $2, $3, $4) RETURNING id",
        blob_id,
        item.created,
        item.size,
        envelope_json,
    )
    await conn.executemany(
        "INSERT INTO queue_rcpts (queue_id, idx, address, orcpt, notify, status, attempts, next_attempt, last_error,"
        " warned) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        [
            (queue_id, i, r.address, r.orcpt, ",".join(r.notify), r.status, r.attempts, r.next_attempt, r.last_error,
             i in entry.warned)
            for i, r in enumerate(item.recipients)
        ],
    )
    return queue_id
