"""SqliteStore: the MailStore protocol over SQLite (see store/api.py for the contract)."""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, Unpack

from mailcove.message import scan as scan_message
from mailcove.message.scanner import scan_prefixed
from mailcove.store.api import NO_PREFIX, MessagePrefix
from mailcove.store.blobs import BlobDir
from mailcove.store.changes import Change
from mailcove.store.frontend import Added, Frontend, NewMessage, StoreOptions, in_memory_or_file
from mailcove.store.sansio import Rule, run
from mailcove.store.spool import Spool
from mailcove.store.sqlite.checkpoint import PAUSE_SECONDS
from mailcove.store.sqlite.driver import WRITER_LOCK_SUFFIX, Context, ReaderPool, Writer, executor
from mailcove.store.sqlite.flags import FlagSets
from mailcove.store.sqlite.schema import connect, migrate
from mailcove.store.sqlite.statements import CHUNK, HANDLERS, Body, deliver
from mailcove.store.sqlite.watch import ChangePoller

T = TypeVar("T")


class SqliteStore(Frontend):
    def __init__(
        self,
        data_dir: Path,
        *,
        change_poll_ms: int = 100,
        reader_threads: int = 4,
        checkpoint_pause: float = PAUSE_SECONDS,
        **options: Unpack[StoreOptions],
    ) -> None:
        super().__init__(data_dir, **options)
        self._checkpoint_pause = checkpoint_pause
        self.db_path = self.data_dir / "mail.db"
        self.blobs = BlobDir(self.data_dir / "blobs")
        self._poll_interval = change_poll_ms / 1000
        self._reader_threads = reader_threads
        self.flagsets = FlagSets()
        self._context = Context(self.flagsets, self.blobs)
        self._writer: Writer | None = None
        self._readers: ReaderPool | None = None
        self._poller: ChangePoller | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._prepare)
        self._writer = Writer(
            self.db_path, self.data_dir, self._min_free, self._on_commit, self.flagsets, self.blobs, HANDLERS,
            deliver, self._checkpoint_pause,
        )
        await asyncio.to_thread(self._writer.start)
        self._readers = ReaderPool(self.db_path, self._reader_threads)
        if self._watch:
            self._poller = ChangePoller(self.db_path, self.changes, self._loop, self._poll_interval)
            self._poller.start()
        self._start_indexer()

    def _prepare(self) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.blobs.prepare()
        _private_db_files(self.db_path)
        conn = connect(str(self.db_path))
        try:
            migrate(conn)
        finally:
            conn.close()

    async def collect_orphans(self, min_age: float = 3600.0) -> int:
        """Remove blob files no message references (left by a crash between file and commit)."""

        def referenced(conn: sqlite3.Connection) -> set[str]:
            return {p for (p,) in conn.execute("SELECT path FROM blobs WHERE path IS NOT NULL")}

        refs = await self._running(self._readers).run(referenced)
        return await asyncio.to_thread(self.blobs.collect_orphans, refs, min_age)

    async def close(self) -> None:
        await self._stop_indexer()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.stop)
            self._poller = None
        if self._writer is not None:
            await asyncio.to_thread(self._writer.stop)
            self._writer = None
        if self._readers is not None:
            await asyncio.to_thread(self._readers.close)
            self._readers = None

    async def backup(self, dest: Path) -> list[str]:
        """mail.db (online backup API, one snapshot) and the blob files it references."""
        from mailcove.store.sqlite.backup import backup_store

        return await asyncio.to_thread(backup_store, self.db_path, self.blobs, Path(dest))

    def _on_commit(self, changes: list[Change], remove: list[str]) -> None:
        # Runs in the writer thread right after COMMIT.
        if remove:
            self.blobs.remove(remove)
        if changes and self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self.changes.publish, changes)
            except RuntimeError:
                pass

    async def _write(self, rule: Callable[..., Rule[T]], *args: Any) -> T:
        return await self._running(self._writer).submit(rule(*args))

    async def _read(self, rule: Callable[..., Rule[T]], *args: Any) -> T:
        cx = self._context
        return await self._running(self._readers).run(lambda conn: run(rule(*args), executor(conn, cx, HANDLERS)))

    async def catch_up(self) -> None:
        if self._poller is not None:
            self._poller.catch_up(self._running(self._readers).connection())

    async def _read_small(self, rule: Callable[..., Rule[T]], *args: Any) -> T:
        # In place, on the caller's own read-only connection: WAL readers never wait for the
        # writer, and a read this small costs less than the hop to a reader thread and back.
        conn = self._running(self._readers).connection()
        return run(rule(*args), executor(conn, self._context, HANDLERS))

    # --- spooling ----------------------------------------------------------------------------

    def new_spool(self, *, normalize_newlines: bool = False) -> Spool:
        return Spool(self.blobs.new_tmp_path, self._inline_max, normalize_newlines=normalize_newlines)

    # --- adding messages ---------------------------------------------------------------------

    async def _add_bytes(self, data: bytes, m: NewMessage) -> Added:
        # info None: the writer scans the message (statements.deliver).
        return await self._running(self._writer).submit_delivery(
            (m.targets, len(data), data, None, None, m.when, m.fallback, m.outbound, m.prefix)
        )

    async def _add_file(self, spool: Spool, m: NewMessage) -> Added:
        size = spool.size

        def adopt() -> tuple[str, bytes]:
            # The spool file becomes the blob as it is: the prefix goes into the row.
            info = _scan_file(spool.path, m.prefix) if m.targets else b""
            return self.blobs.commit_file(spool.path), info

        try:
            rel, info = await asyncio.to_thread(adopt)
        except BaseException:
            spool.discard()
            raise
        try:
            return await self._running(self._writer).submit_delivery(
                (m.targets, size, None, rel, info, m.when, m.fallback, m.outbound, m.prefix)
            )
        except BaseException:
            self.blobs.remove([rel])
            raise

    async def _place_bodies(self, sources: Sequence[bytes | Spool], scan: bool) -> list[tuple[int, Body]]:
        """Bodies above the inline limit become blob files now (off the event loop and off the
        writer thread, like the scanning), committed before the write that references them."""

        def place() -> list[tuple[int, Body]]:
            out: list[tuple[int, Body]] = []
            try:
                for source in in_memory_or_file(sources):
                    if isinstance(source, Spool):
                        info = _scan_file(source.path) if scan else b""
                        out.append((source.size, (None, self.blobs.commit_file(source.path), info)))
                    elif len(source) <= self._inline_max:
                        out.append((len(source), (source, None, scan_message(source).to_bytes() if scan else b"")))
                    else:
                        tmp = self.blobs.new_tmp_path()
                        _write_private(tmp, source)
                        info = scan_message(source).to_bytes() if scan else b""
                        out.append((len(source), (None, self.blobs.commit_file(tmp), info)))
            except BaseException:
                self.blobs.remove(_files(out))
                raise
            return out

        return await asyncio.to_thread(place)

    async def _drop_unreferenced(self, bodies: Sequence[tuple[int, Body]]) -> None:
        files = _files(bodies)
        if files:
            referenced = set(await self._running(self._readers).run(lambda c: _referenced(c, files)))
            self.blobs.remove([f for f in files if f not in referenced])


def _scan_file(path: Path, prefix: MessagePrefix = NO_PREFIX) -> bytes:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return scan_prefixed(prefix.local, mm, prefix.skip).to_bytes()


def _files(bodies: Sequence[tuple[int, Body]]) -> list[str]:
    return [body[1] for _size, body in bodies if body[1] is not None]


def _referenced(conn: sqlite3.Connection, paths: list[str]) -> list[str]:
    out: list[str] = []
    for i in range(0, len(paths), CHUNK):
        chunk = paths[i : i + CHUNK]
        marks = ",".join("?" * len(chunk))
        out.extend(p for (p,) in conn.execute(f"SELECT path FROM blobs WHERE path IN ({marks})", chunk))
    return out


def _private_db_files(db_path: Path) -> None:
    """mail.db is created 0600 before SQLite opens it, whatever the umask: SQLite gives its -wal
    and -shm the database file's mode. Files of an older install that are wider are narrowed."""
    fd = os.open(db_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            with contextlib.suppress(PermissionError):  # not the owner: the data dir check says so
                os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal", WRITER_LOCK_SUFFIX):
        side = db_path.with_name(db_path.name + suffix)
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if side.stat().st_mode & 0o077:
                os.chmod(side, 0o600)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
