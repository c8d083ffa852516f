"""The embedded default backend: SQLite in WAL mode, one writer thread with group commit,
reader threads with their own connections, large bodies in blob files."""

from mailcove.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
