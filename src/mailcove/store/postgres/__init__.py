"""The networked backend: PostgreSQL through asyncpg, shared by several mailcove nodes. Writes
run in short transactions whose row locks order them per mailbox, changes travel by
LISTEN/NOTIFY, message bytes live in the database (see docs/architecture.md)."""

from mailcove.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
