"""SqliteStore: the MailStore protocol over SQLite (see store/api.py for the contract)."""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mailcove.message import scan
from mailcove.message.scanner import scan_prefixed
from mailcove.store.api import (
    AppendResult,
    ImportMessage,
    ImportResult,
    MessagePrefix,
    QueueState,
    StoredMessage,
)
from mailcove.store.blobs import BlobDir
from mailcove.store.changes import Change, ChangeBus
from mailcove.store.frontend import Frontend, check_import, envelope_to_json
from mailcove.store.names import normalize_name
from mailcove.store.rules import messages, queue
from mailcove.store.sansio import run
from mailcove.store.spool import Spool
from mailcove.store.sqlite import statements as ops
from mailcove.store.sqlite.driver import Context, ReaderPool, Writer, executor
from mailcove.store.sqlite.flags import FlagSets
from mailcove.store.sqlite.schema import connect, migrate
from mailcove.store.sqlite.watch import ChangePoller


class SqliteStore(Frontend):
    def __init__(
        self,
        data_dir: Path,
        *,
        inline_max: int = 128 * 1024,
        min_free_bytes: int = 0,
        default_quota_bytes: int = 0,
        default_quota_messages: int = 0,
        change_poll_ms: int = 100,
        watch_changes: bool = True,
        reader_threads: int = 4,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.db_path = self.data_dir / "mail.db"
        self.blobs = BlobDir(self.data_dir / "blobs")
        self._inline_max = inline_max
        self._min_free = min_free_bytes
        self._default_quota = (default_quota_bytes, default_quota_messages)
        self._poll_interval = change_poll_ms / 1000
        self._watch = watch_changes
        self._reader_threads = reader_threads
        self.changes = ChangeBus()
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
            self.db_path, self.data_dir, self._min_free, self._on_commit, self.flagsets, self.blobs, ops.HANDLERS,
            ops.deliver,
        )
        await asyncio.to_thread(self._writer.start)
        self._readers = ReaderPool(self.db_path, self._reader_threads)
        if self._watch:
            self._poller = ChangePoller(self.db_path, self.changes, self._loop, self._poll_interval)
            self._poller.start()

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

        refs = await self._readers_or_fail().run(referenced)
        return await asyncio.to_thread(self.blobs.collect_orphans, refs, min_age)

    async def close(self) -> None:
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

    async def _write(self, op: Any, *args: Any) -> Any:
        if self._writer is None:
            raise RuntimeError("store not started")
        return await self._writer.submit(op(*args))

    def _readers_or_fail(self) -> ReaderPool:
        if self._readers is None:
            raise RuntimeError("store not started")
        return self._readers

    def _writer_or_fail(self) -> Writer:
        if self._writer is None:
            raise RuntimeError("store not started")
        return self._writer

    async def _read(self, fn: Any, *args: Any) -> Any:
        if self._readers is None:
            raise RuntimeError("store not started")
        cx = self._context
        return await self._readers.run(lambda conn: run(fn(*args), executor(conn, cx, ops.HANDLERS)))

    # --- spooling ----------------------------------------------------------------------------

    def new_spool(self, *, normalize_newlines: bool = False) -> Spool:
        return Spool(self.blobs.new_tmp_path, self._inline_max, normalize_newlines=normalize_newlines)

    # --- adding messages ---------------------------------------------------------------------

    async def _add_bytes(
        self,
        data: bytes,
        targets: list[tuple[str, str, frozenset[str]]],
        when: float,
        fallback_to_inbox: bool,
        outbound: tuple[str, list[tuple[str, str | None, str]]] | None,
        prefix: MessagePrefix,
    ) -> tuple[list[AppendResult], int | None]:
        # info None: the writer scans the message (statements.deliver).
        return await self._writer_or_fail().submit_delivery(
            (targets, len(data), data, None, None, when, fallback_to_inbox, outbound, prefix)
        )

    async def _add_file(
        self,
        spool: Spool,
        targets: list[tuple[str, str, frozenset[str]]],
        when: float,
        fallback: bool,
        outbound: tuple[str, list[tuple[str, str | None, str]]] | None,
        prefix: MessagePrefix,
    ) -> tuple[list[AppendResult], int | None]:
        size = spool.size

        def adopt() -> tuple[str, bytes]:
            # The spool file becomes the blob as it is: the prefix goes into the row.
            info = b""
            if targets:
                with open(spool.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                    info = scan_prefixed(prefix.local, mm, prefix.skip).to_bytes()
            return self.blobs.commit_file(spool.path), info

        try:
            rel, info = await asyncio.to_thread(adopt)
        except BaseException:
            spool.discard()
            raise
        try:
            return await self._writer_or_fail().submit_delivery(
                (targets, size, None, rel, info, when, fallback, outbound, prefix)
            )
        except BaseException:
            self.blobs.remove([rel])
            raise

    async def import_messages(
        self,
        user: str,
        mailbox: str,
        items: Sequence[ImportMessage],
        *,
        uidvalidity: int | None = None,
        uidnext: int | None = None,
    ) -> ImportResult:
        check_import(items, uidvalidity, uidnext)
        now = time.time()
        inline_max = self._inline_max

        def prepare() -> tuple[list[messages.ImportRow], list[str]]:
            # Scanning and blob files happen here, off the event loop and off the writer thread.
            rows: list[messages.ImportRow] = []
            files: list[str] = []
            try:
                for item in items:
                    source = item.source
                    if isinstance(source, Spool):
                        source.finish()
                        if source.inline:
                            source = source.getvalue()
                        else:
                            with open(source.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                                info = scan(mm).to_bytes()
                            size = source.size
                            files.append(self.blobs.commit_file(source.path))
                            rows.append((item.uid, size, (None, files[-1], info), frozenset(item.flags),
                                         now if item.internaldate is None else item.internaldate))
                            continue
                    data = bytes(source)
                    path = None
                    if len(data) > inline_max:
                        tmp = self.blobs.new_tmp_path()
                        _write_private(tmp, data)
                        path = self.blobs.commit_file(tmp)
                        files.append(path)
                    rows.append((item.uid, len(data), (None if path else data, path, scan(data).to_bytes()),
                                 frozenset(item.flags), now if item.internaldate is None else item.internaldate))
            except BaseException:
                self.blobs.remove(files)
                raise
            return rows, files

        rows, files = await asyncio.to_thread(prepare)
        try:
            result = await self._write(
                messages.import_messages, user, normalize_name(mailbox), rows, uidvalidity, uidnext
            )
        except BaseException:
            self.blobs.remove(files)
            raise
        if files:
            # Blob files of skipped items are not referenced by any row.
            referenced = set(await self._readers_or_fail().run(lambda c: _referenced(c, files)))
            self.blobs.remove([f for f in files if f not in referenced])
        return result

    # --- copying to another backend (mailcove db copy) -----------------------------------------

    async def restore_messages(self, user: str, mailbox: str, stored: Sequence[StoredMessage]) -> None:
        if not stored:
            return
        name = normalize_name(mailbox)

        def prepare() -> tuple[list[messages.RestoreRow], list[str]]:
            rows: list[messages.RestoreRow] = []
            files: list[str] = []
            try:
                for m in stored:
                    data, path = self._place(m.data)
                    if path is not None:
                        files.append(path)
                    body = (data, path, scan(m.data).to_bytes())
                    rows.append((m.uid, frozenset(m.flags), m.modseq, m.internaldate, len(m.data), body))
            except BaseException:
                self.blobs.remove(files)
                raise
            return rows, files

        rows, files = await asyncio.to_thread(prepare)
        try:
            await self._write(messages.restore_messages, user, name, rows)
        except BaseException:
            self.blobs.remove(files)
            raise

    def _place(self, data: bytes) -> tuple[bytes | None, str | None]:
        """Inline bytes, or a committed blob file for a body above the inline limit."""
        if len(data) <= self._inline_max:
            return data, None
        tmp = self.blobs.new_tmp_path()
        _write_private(tmp, data)
        return None, self.blobs.commit_file(tmp)

    async def restore_queue(self, entry: QueueState) -> int:
        data, path = await asyncio.to_thread(self._place, entry.data)
        try:
            env = envelope_to_json(entry.item.envelope)
            return await self._write(queue.restore_queue, entry, env, (data, path, b""))
        except BaseException:
            if path is not None:
                self.blobs.remove([path])
            raise


def _referenced(conn: sqlite3.Connection, paths: list[str]) -> list[str]:
    out: list[str] = []
    for i in range(0, len(paths), ops.CHUNK):
        chunk = paths[i : i + ops.CHUNK]
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
    for suffix in ("-wal", "-shm", "-journal"):
        side = db_path.with_name(db_path.name + suffix)
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if side.stat().st_mode & 0o077:
                os.chmod(side, 0o600)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
