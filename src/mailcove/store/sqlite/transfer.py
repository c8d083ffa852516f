"""Export and restore of whole accounts and the queue (store/api.py, `mailcove db copy`).

Reads take a reader connection; writes are writer-thread operations like statements.py's. Restoring
writes rows with the source's UIDs, MODSEQs and counters as they are: it is a copy, not a
delivery, so no change is published and no quota applies."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from mailcove.store.api import QueueState
from mailcove.store.frontend import served
from mailcove.store.sqlite.driver import Txn

SEEN = "\\Seen"
# (uid, flags, modseq, internaldate, size, inline data or None, blob file or None, info)
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
