"""Named leases (store/api.py acquire_lease) in one table, judged by the database's clock.

Each verb is one statement, so no transaction is held open: INSERT ... ON CONFLICT DO UPDATE
locks the existing row, so of several nodes racing for a free or expired lease exactly one
statement sees the WHERE clause true; the others see the winner's row and get no row back."""

from __future__ import annotations

import asyncpg

_NOW = "extract(epoch FROM clock_timestamp())"


async def acquire(pool: asyncpg.Pool, name: str, owner: str, ttl: float) -> bool:
    row = await pool.fetchval(
        f"INSERT INTO leases (name, owner, expires) VALUES ($1, $2, {_NOW} + $3::float8)"
        " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires"
        f" WHERE leases.owner = excluded.owner OR leases.expires <= {_NOW}"
        " RETURNING 1",
        name,
        owner,
        ttl,
    )
    return row is not None


async def renew(pool: asyncpg.Pool, name: str, owner: str, ttl: float) -> bool:
    # An expired lease nobody took yet is still ours to renew: nothing happened in between that
    # another holder could have relied on.
    row = await pool.fetchval(
        f"UPDATE leases SET expires = {_NOW} + $3::float8 WHERE name = $1 AND owner = $2 RETURNING 1",
        name,
        owner,
        ttl,
    )
    return row is not None


async def release(pool: asyncpg.Pool, name: str, owner: str) -> None:
    await pool.execute("DELETE FROM leases WHERE name = $1 AND owner = $2", name, owner)
