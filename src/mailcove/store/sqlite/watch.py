"""Notice commits made by other processes (admin CLI, `mailcove deliver`, imports) and feed them
to the change bus. SQLite has no NOTIFY; `PRAGMA data_version` changes whenever another
connection commits and costs no I/O to read, so polling it every 100 ms is cheap.

A client polling with NOOP expects to see at once what another session just did, and with
`serve --workers` that session may be in another process: `catch_up` publishes, on the event
loop and right away, what was committed since the poller's last publication (at most 100 ms of
commits, and at most CATCH_UP_MAX changes; the poller brings any rest)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from mailcove.store.changes import Change, ChangeBus
from mailcove.store.sqlite.schema import connect

log = logging.getLogger("mailcove.store")

CATCH_UP_MAX = 1000
_SELECT = "SELECT id, user, mailbox_id, kind, uids, modseq FROM changes WHERE id > ? ORDER BY id"


def _changes(rows: list[Any]) -> list[Change]:
    return [
        Change(i, user, mb, kind, tuple(int(u) for u in uids.split(",")) if uids else (), modseq)
        for i, user, mb, kind, uids, modseq in rows
    ]


class ChangePoller:
    def __init__(self, db_path: Path, bus: ChangeBus, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self._db_path = db_path
        self._bus = bus
        self._loop = loop
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mailcove-store-changes", daemon=True)
        self._published = -1  # on the loop: the newest id handed to the bus (-1: not started)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def catch_up(self, conn: sqlite3.Connection) -> None:
        """Publish what was committed since the last publication (on the loop, `conn` its own)."""
        if self._published < 0:
            return
        rows = conn.execute(_SELECT + " LIMIT ?", (self._published, CATCH_UP_MAX)).fetchall()
        if rows:
            self._publish(_changes(rows))

    def _publish(self, changes: list[Change]) -> None:
        # The bus drops what it has seen (a change read both here and by catch_up, or published
        # by this process's writer too).
        self._published = max(self._published, changes[-1].id)
        self._bus.publish(changes)

    def _started(self, watermark: int) -> None:
        self._published = max(self._published, watermark)

    def _run(self) -> None:
        conn = connect(str(self._db_path), readonly=True)
        try:
            (watermark,) = conn.execute("SELECT coalesce(max(id), 0) FROM changes").fetchone()
            self._loop.call_soon_threadsafe(self._started, watermark)
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            while not self._stop.wait(self._interval):
                now = conn.execute("PRAGMA data_version").fetchone()[0]
                if now == version:
                    continue
                version = now
                rows = conn.execute(_SELECT, (watermark,)).fetchall()
                if not rows:
                    continue
                watermark = rows[-1][0]
                try:
                    self._loop.call_soon_threadsafe(self._publish, _changes(rows))
                except RuntimeError:
                    return  # the loop is gone
        except Exception:
            log.exception("change poller stopped")
        finally:
            conn.close()
