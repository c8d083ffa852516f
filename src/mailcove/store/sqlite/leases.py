"""Lease operations (store/api.py acquire_lease), run in the writer thread like every write.

The writer's transaction holds SQLite's write lock, so the read-then-write in `acquire` cannot
race another process: two `mailcove serve` on one data dir agree on who holds a lease."""

from __future__ import annotations

import sqlite3
import time

from mailcove.store.sqlite.driver import Txn


def acquire(conn: sqlite3.Connection, txn: Txn, name: str, owner: str, ttl: float) -> bool:
    now = time.time()
    row = conn.execute("SELECT owner, expires FROM leases WHERE name = ?", (name,)).fetchone()
    if row is not None and row[0] != owner and row[1] > now:
        return False
    conn.execute(
        "INSERT INTO leases (name, owner, expires) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires",
        (name, owner, now + ttl),
    )
    return True


def renew(conn: sqlite3.Connection, txn: Txn, name: str, owner: str, ttl: float) -> bool:
    # An expired lease nobody took yet is still ours to renew: nothing happened in between that
    # another holder could have relied on.
    cur = conn.execute(
        "UPDATE leases SET expires = ? WHERE name = ? AND owner = ?", (time.time() + ttl, name, owner)
    )
    return cur.rowcount == 1


def release(conn: sqlite3.Connection, txn: Txn, name: str, owner: str) -> None:
    conn.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))
