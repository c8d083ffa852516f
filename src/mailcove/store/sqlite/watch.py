"""Notice commits made by other processes (admin CLI, `mailcove deliver`, imports) and feed them
to the change bus. SQLite has no NOTIFY; `PRAGMA data_version` changes whenever another
connection commits and costs no I/O to read, so polling it every 100 ms is cheap."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

from mailcove.store.changes import Change, ChangeBus
from mailcove.store.sqlite.schema import connect

log = logging.getLogger("mailcove.store")


class ChangePoller:
    def __init__(self, db_path: Path, bus: ChangeBus, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self._db_path = db_path
        self._bus = bus
        self._loop = loop
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mailcove-store-changes", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        conn = connect(str(self._db_path), readonly=True)
        try:
            (watermark,) = conn.execute("SELECT coalesce(max(id), 0) FROM changes").fetchone()
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            while not self._stop.wait(self._interval):
                now = conn.execute("PRAGMA data_version").fetchone()[0]
                if now == version:
                    continue
                version = now
                rows = conn.execute(
                    "SELECT id, user, mailbox_id, kind, uids, modseq FROM changes WHERE id > ? ORDER BY id",
                    (watermark,),
                ).fetchall()
                if not rows:
                    continue
                watermark = rows[-1][0]
                changes = [
                    Change(i, user, mb, kind, tuple(int(u) for u in uids.split(",")) if uids else (), modseq)
                    for i, user, mb, kind, uids, modseq in rows
                ]
                try:
                    self._loop.call_soon_threadsafe(self._bus.publish, changes)
                except RuntimeError:
                    return  # the loop is gone
        except Exception:
            log.exception("change poller stopped")
        finally:
            conn.close()
