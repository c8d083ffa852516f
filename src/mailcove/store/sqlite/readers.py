"""Reads run in a small thread pool, each thread with its own read-only connection, so the event
loop never waits on SQLite and readers never wait on the writer (WAL)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from mailcove.store.sqlite.schema import connect

T = TypeVar("T")


class ReaderPool:
    def __init__(self, db_path: Path, workers: int = 4) -> None:
        self._db_path = db_path
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mailcove-store-read")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(str(self._db_path), readonly=True)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self._conn()))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()


def run_sync(fn: Callable[[sqlite3.Connection], Any], db_path: Path) -> Any:
    conn = connect(str(db_path), readonly=True)
    try:
        return fn(conn)
    finally:
        conn.close()
