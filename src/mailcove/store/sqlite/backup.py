"""Consistent copies of SQLite databases and of the store's blob files, while the server runs.

A database is copied with SQLite's online backup API in a single step (`pages=-1`): the whole
copy is read inside one read transaction, so it is the database as of one commit, whatever the
server writes meanwhile (WAL readers never block the writer). `VACUUM INTO` would do the same but
rewrites every page; the backup API copies pages as they are and is what the SQLite docs
recommend for live copies.

Blob files are the bodies of large messages, referenced by rows of mail.db. The copy takes a
shared flock on `<data_dir>/backup.hold` *before* it reads the database; while the lock is held
the store leaves the files of expunged messages in place (blobs.BlobDir.held), so every file the
copied rows reference still exists when it is copied. The files left behind are removed by
`collect_orphans` at the next start."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from mailcove.store.blobs import BlobDir


def copy_database(src: Path, dest: Path) -> None:
    """Copy one SQLite database file (WAL included) to `dest` (which must not exist)."""
    if dest.exists():
        raise FileExistsError(dest)
    # timeout: the server may hold the write lock for a group commit; the backup only waits
    # for a read snapshot, which WAL gives at once, but a checkpoint can briefly need it.
    source = sqlite3.connect(src, timeout=30.0)
    try:
        target = sqlite3.connect(dest)
        try:
            source.backup(target, pages=-1)
            # A self-contained file: no -wal next to it in the backup.
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
    finally:
        source.close()


@contextlib.contextmanager
def hold_blobs(blobs: BlobDir) -> Iterator[None]:
    """Keep the store from deleting blob files while the block runs (see module docstring)."""
    # 0644: a backup run as root must not lock the server (another user) out of the probe.
    fd = os.open(blobs.hold_path, os.O_RDONLY | os.O_CREAT, 0o644)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o644)  # whatever the umask
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def backup_store(db_path: Path, blobs: BlobDir, dest: Path) -> list[str]:
    """mail.db and every blob file it references, into `dest`. Returns the relative paths."""
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    with hold_blobs(blobs):
        copy_database(db_path, dest / db_path.name)
        conn = sqlite3.connect(f"file:{dest / db_path.name}?mode=ro", uri=True)
        try:
            rels = [row[0] for row in conn.execute("SELECT path FROM blobs WHERE path IS NOT NULL")]
        finally:
            conn.close()
        written = [db_path.name]
        for rel in rels:
            out = dest / "blobs" / rel
            out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.copy2(blobs.path(rel), out)
            written.append(f"blobs/{rel}")
    return written
