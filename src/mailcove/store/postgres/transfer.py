"""Export and restore of whole accounts and the queue (store/api.py, `mailcove db copy`).

Restoring writes rows with the source's UIDs, MODSEQs and counters as they are: it is a copy,
not a delivery, so no change is published and no quota applies (as in sqlite/transfer.py)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from mailcove.store.api import QueueState
from mailcove.store.postgres.driver import Txn
from mailcove.store.postgres.statements import insert_body, read_served

SEEN = "\\Seen"
# (uid, flags, modseq, internaldate, data, info)
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
