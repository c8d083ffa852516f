"""Message bodies too large to keep inside the database live in their own files.

A file is made durable before the database commit that references it: write to tmp/, fsync the
file, rename into blobs/XX/, fsync both directories. A crash can therefore leave an orphan file
(never a dangling reference); `collect_orphans` removes those at start."""

from __future__ import annotations

import fcntl
import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path

# In the data dir; `mailcove backup` holds a shared flock on it while it copies blob files.
HOLD_NAME = "backup.hold"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobDir:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root.parent / "tmp"

    def prepare(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.tmp.mkdir(mode=0o700, parents=True, exist_ok=True)

    def new_tmp_path(self) -> Path:
        return self.tmp / f"{secrets.token_hex(12)}.tmp"

    def commit_file(self, tmp_path: Path) -> str:
        """fsync `tmp_path`, move it into the blob tree and fsync the directories.
        Returns the path relative to the blob root, which is what the database stores."""
        fd = os.open(tmp_path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        name = secrets.token_hex(16)
        sub = self.root / name[:2]
        if not sub.is_dir():
            sub.mkdir(mode=0o700, exist_ok=True)
            fsync_dir(self.root)
        dest = sub / name
        os.rename(tmp_path, dest)
        fsync_dir(sub)
        fsync_dir(self.tmp)
        return f"{name[:2]}/{name}"

    def path(self, rel: str) -> Path:
        return self.root / rel

    @property
    def hold_path(self) -> Path:
        return self.root.parent / HOLD_NAME

    def held(self) -> bool:
        """True while `mailcove backup` copies blob files (it holds a shared flock on the hold
        file): files are then left in place, and `collect_orphans` at the next start removes
        the ones no message references any more."""
        try:
            fd = os.open(self.hold_path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        except OSError:
            return True  # unreadable: keep the files; orphan collection is the safe side
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops the probe's lock
        return False

    def remove(self, rels: Iterable[str]) -> None:
        if self.held():
            return
        for rel in rels:
            try:
                os.unlink(self.root / rel)
            except FileNotFoundError:
                pass

    def collect_orphans(self, referenced: set[str], min_age: float = 3600.0) -> int:
        """Delete blob files no row references and leftover spool files, once they are older than
        `min_age` seconds: a younger file may belong to a delivery another process (the CLI
        writing directly into the store) has not committed yet."""
        removed = 0
        if self.held():
            return 0
        cutoff = time.time() - min_age
        candidates: list[Path] = []
        if self.tmp.is_dir():
            candidates.extend(self.tmp.iterdir())
        if self.root.is_dir():
            for sub in self.root.iterdir():
                if sub.is_dir():
                    candidates.extend(p for p in sub.iterdir() if f"{sub.name}/{p.name}" not in referenced)
        for p in candidates:
            try:
                if p.stat().st_mtime < cutoff:
                    p.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed
