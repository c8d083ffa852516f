"""SQLite-specific: flag sets inserted by a batch become known process-wide only once the batch
committed, and an operation that fails takes its new flag sets with it."""

from __future__ import annotations

from pathlib import Path

from mailcove.store.sqlite.driver import BatchCache
from mailcove.store.sqlite.flags import FlagSets
from mailcove.store.sqlite.schema import connect, migrate


def test_new_flagsets_are_pending_until_commit(tmp_path: Path) -> None:
    conn = connect(str(tmp_path / "t.db"))
    migrate(conn)
    sets = FlagSets()
    cache = BatchCache()
    conn.execute("BEGIN IMMEDIATE")
    cache.begin_op()
    kept = sets.id_for(conn, frozenset({"\\Seen", "$A"}), cache.new_flagsets)
    cache.begin_op()
    dropped = sets.id_for(conn, frozenset({"$B"}), cache.new_flagsets)
    assert sets.id_for(conn, frozenset({"$B"}), cache.new_flagsets) == dropped
    cache.undo_op()  # the second operation failed
    assert list(cache.new_flagsets) == ["$A \\Seen"]
    conn.execute("COMMIT")
    sets.commit(cache.new_flagsets)
    assert sets.get(conn, kept) == {"\\Seen", "$A"}
    assert sets.id_for(conn, frozenset({"$A", "\\Seen"}), {}) == kept
    # another process's FlagSets learns ids from the table
    other = FlagSets()
    assert other.get(connect(str(tmp_path / "t.db"), readonly=True), kept) == {"\\Seen", "$A"}
    assert sets.get(conn, 0) == frozenset()
