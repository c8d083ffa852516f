"""Checkpoints of the SQLite write-ahead log, off the writer thread.

By default SQLite checkpoints inside the COMMIT that takes the WAL past 1,000 pages: that
commit then also copies those pages into mail.db and fsyncs it, and every delivery waiting for
the batch waits for the copy too. At 100 KB a message is 25 WAL pages, so the writer spent two
thirds of its time in COMMIT (docs/design/bench-smtp.md). Here a thread with its own connection
runs a PASSIVE checkpoint after commits instead (SQLite releases the GIL while it copies and
syncs), and the writer's own automatic checkpoint is only a backstop for a WAL grown past
BACKSTOP_PAGES, should this thread fall behind.

A PASSIVE checkpoint never blocks a writer or a reader and changes nothing a reader sees;
durability is the WAL's fsync at each COMMIT, which is unchanged. Several processes' checkpointers
(`serve --workers`) exclude each other through SQLite's checkpoint lock: one that finds it
taken returns busy and tries again after the next commit."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger("mailcove.store")

BACKSTOP_PAGES = 16_000  # 64 MB of 4 KiB pages: the writer checkpoints itself past this
PAUSE_SECONDS = 0.05  # at most one checkpoint per pause: fewer, larger copies under a flood


class Checkpointer:
    def __init__(self, connect: Callable[[], sqlite3.Connection], *, pause: float = PAUSE_SECONDS) -> None:
        self._connect = connect
        self._pause = pause
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mailcove-store-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def poke(self) -> None:
        """A commit added to the WAL (called by the writer after each COMMIT)."""
        self._wanted.set()

    def stop(self) -> None:
        """Checkpoint once more and end the thread."""
        self._stop.set()
        self._wanted.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        try:
            conn = self._connect()
        except Exception:
            log.exception("WAL checkpointer could not open the database; the writer checkpoints itself")
            return
        try:
            while True:
                self._wanted.wait()
                self._wanted.clear()
                self._checkpoint(conn)
                if self._stop.is_set():
                    break
                self._stop.wait(self._pause)
        finally:
            conn.close()

    @staticmethod
    def _checkpoint(conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # busy (another process's checkpoint) or a transient error
            log.debug("WAL checkpoint: %s", exc)
