"""SQLite's driver: the one writer thread with group commit, and the reader threads.

Every write is a rule (store/rules/) or a delivery queued here. The thread takes all writes
waiting, runs each inside its own SAVEPOINT (so one that fails, say over quota, rolls back
alone), running a rule's statements with statements.py's handlers, then commits once: one WAL
fsync covers the whole batch. Futures are resolved only after COMMIT returned, so no caller is
told "done" before its data is on disk.

Several processes on one database (`serve --workers`, a CLI command beside the server) each have
a writer. SQLite hands its write lock over by polling: a BEGIN IMMEDIATE that finds the lock taken
sleeps 1, 2, 5, 10... ms before it looks again, so two busy workers' writers spent about half of
imaptest's 20 s asleep in BEGIN (9.5 s each, measured). The writers therefore queue on a flock of
`<db>-writer.lock` first, which the kernel hands to the next waiter the moment it is released;
SQLite's own lock is then free, or held only by a process without that habit (its busy timeout
still covers those).

Reads run in a small thread pool (ReaderPool), each thread with its own read-only connection, so
the event loop never waits on SQLite and readers never wait on the writer (WAL); except reads
of a few rows (frontend.SMALL_META), which the store runs in place on the loop's own connection."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from mailcove.store.blobs import BlobDir
from mailcove.store.changes import Change, RawChange, merge_changes
from mailcove.store.sansio import Handlers, Rule, Statement, run
from mailcove.store.sqlite.checkpoint import BACKSTOP_PAGES, Checkpointer
from mailcove.store.sqlite.flags import FlagSets
from mailcove.store.sqlite.schema import connect

log = logging.getLogger("mailcove.store")
T = TypeVar("T")

MAX_BATCH = 512
PRUNE_EVERY_SECONDS = 60.0
KEEP_CHANGES_SECONDS = 600.0
WRITER_LOCK_SUFFIX = "-writer.lock"  # beside the database: mail.db-writer.lock


class BatchCache:
    """Account and mailbox rows read once per batch and written back once, before COMMIT.

    Safe because the batch holds SQLite's write lock (BEGIN IMMEDIATE): nobody else can change
    these rows meanwhile. Fifty deliveries to one INBOX then cost two UPDATEs, not a hundred.
    Only deliveries use it; any other operation flushes it first and reads the tables directly.
    Each operation's changes to cached rows are undone if the operation fails."""

    def __init__(self) -> None:
        # name -> [id, quota_bytes, quota_messages, used_bytes, used_messages]
        self.accounts: dict[str, list[int]] = {}
        # (account_id, name) -> [id, uidvalidity, uidnext, highestmodseq, noselect, messages, unseen, size]
        self.mailboxes: dict[tuple[int, str], list[int] | None] = {}
        # flag sets inserted by this batch: remembered process-wide only after COMMIT
        self.new_flagsets: dict[str, int] = {}
        self._undo: list[tuple[list[int], list[int]]] = []
        self._flagsets_before: int = 0

    def touch(self, row: list[int]) -> list[int]:
        self._undo.append((row, row[:]))
        return row

    def begin_op(self) -> None:
        self._undo.clear()
        self._flagsets_before = len(self.new_flagsets)

    def undo_op(self) -> None:
        for row, saved in reversed(self._undo):
            row[:] = saved
        self._undo.clear()
        # dicts keep insertion order: drop what this operation added
        for text in list(self.new_flagsets)[self._flagsets_before :]:
            del self.new_flagsets[text]

    def flush(self, conn: sqlite3.Connection) -> None:
        if self.accounts:
            conn.executemany(
                "UPDATE accounts SET used_bytes = ?, used_messages = ? WHERE id = ?",
                [(r[3], r[4], r[0]) for r in self.accounts.values()],
            )
        rows = [r for r in self.mailboxes.values() if r is not None]
        if rows:
            conn.executemany(
                "UPDATE mailboxes SET uidnext = ?, highestmodseq = ?, messages = ?, unseen = ?, size = ? WHERE id = ?",
                [(r[2], r[3], r[5], r[6], r[7], r[0]) for r in rows],
            )
        self.accounts.clear()
        self.mailboxes.clear()


class Context:
    """What a statement sees besides the connection: the flag-set table and the blob files."""

    __slots__ = ("blobs", "flagsets")

    def __init__(self, flagsets: FlagSets, blobs: BlobDir) -> None:
        self.flagsets = flagsets
        self.blobs = blobs

    def flag_set(self, conn: sqlite3.Connection, fid: int) -> frozenset[str]:
        return self.flagsets.get(conn, fid)


class Txn(Context):
    """A write's context in the batch: what to publish and clean up once the batch is committed."""

    __slots__ = ("cache", "changes", "disk_low", "remove_blobs")

    def __init__(self, flagsets: FlagSets, blobs: BlobDir, disk_low: bool, cache: BatchCache) -> None:
        self.flagsets = flagsets
        self.blobs = blobs
        self.disk_low = disk_low
        self.cache = cache
        self.changes: list[RawChange] = []
        self.remove_blobs: list[str] = []

    def change(self, user: str, mailbox_id: int, kind: str, uids: Sequence[int], modseq: int) -> None:
        self.changes.append((user, mailbox_id, kind, list(uids), modseq))

    def flag_id(self, conn: sqlite3.Connection, flags: frozenset[str]) -> int:
        return self.flagsets.id_for(conn, flags, self.cache.new_flagsets)

    def flag_set(self, conn: sqlite3.Connection, fid: int) -> frozenset[str]:
        for text, pending in self.cache.new_flagsets.items():
            if pending == fid:
                return frozenset(text.split())
        return self.flagsets.get(conn, fid)


Handler = Callable[[sqlite3.Connection, Any, Any], Any]
# What the writer runs: a rule (store/rules/), or a delivery (statements.deliver's arguments).
RULE, DELIVERY = 0, 1
_Item = tuple[int, Any, asyncio.Future[Any], asyncio.AbstractEventLoop]


def executor(conn: sqlite3.Connection, cx: Context, handlers: Handlers[Handler]) -> Callable[[Statement], Any]:
    """Runs one statement of a rule on `conn`."""
    return lambda s: handlers[type(s)](conn, cx, s)


class Writer:
    def __init__(
        self,
        db_path: Path,
        data_dir: Path,
        min_free_bytes: int,
        on_commit: Callable[[list[Change], list[str]], None],
        flagsets: FlagSets,
        blobs: BlobDir,
        handlers: Handlers[Handler],
        deliver: Callable[..., Any],
        checkpoint_pause: float,
    ) -> None:
        self._flagsets = flagsets
        self._blobs = blobs
        self._handlers = handlers
        self._deliver = deliver
        self._db_path = db_path
        self._data_dir = data_dir
        self._min_free = min_free_bytes
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="mailcove-store-writer", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._last_prune = 0.0
        self._lock_fd = -1
        self._checkpointer = Checkpointer(lambda: connect(str(db_path)), pause=checkpoint_pause)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def submit(self, rule: Rule[Any]) -> asyncio.Future[Any]:
        """Run a rule in the next batch; its future is resolved once the batch committed."""
        return self._put(RULE, rule)

    def submit_delivery(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """`deliver(conn, txn, *args)` (statements.deliver) in the next batch."""
        return self._put(DELIVERY, args)

    def _put(self, kind: int, payload: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.put((kind, payload, fut, loop))
        return fut

    def stop(self) -> None:
        """Finish everything queued, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _disk_low(self) -> bool:
        if self._min_free <= 0:
            return False
        st = os.statvfs(self._data_dir)
        return st.f_bavail * st.f_frsize < self._min_free

    @contextlib.contextmanager
    def _turn(self) -> Any:
        """This process's turn at the database's write lock (see the module's docstring)."""
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # blocks this thread only: the GIL is released
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _run(self) -> None:
        try:
            conn = connect(str(self._db_path))
            # The checkpointer copies the WAL into the database after commits (checkpoint.py).
            conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
            lock_path = f"{self._db_path}{WRITER_LOCK_SUFFIX}"
            self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._checkpointer.start()
        self._ready.set()
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            with self._turn():
                self._run_batch(conn, batch)
            self._checkpointer.poke()
        self._checkpointer.stop()
        conn.close()
        os.close(self._lock_fd)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Item]) -> None:
        disk_low = self._disk_low()
        cache = BatchCache()
        outcomes: list[tuple[asyncio.Future[Any], asyncio.AbstractEventLoop, Any, BaseException | None]] = []
        all_changes: list[tuple[str, int, str, list[int], int]] = []
        remove: list[str] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            for _kind, _payload, fut, loop in batch:
                outcomes.append((fut, loop, None, exc))
            self._resolve(outcomes, [], [])
            return
        for kind, payload, fut, loop in batch:
            txn = Txn(self._flagsets, self._blobs, disk_low, cache)
            if kind != DELIVERY:
                # Only deliveries work on the batch cache; everything else sees the tables.
                cache.flush(conn)
            cache.begin_op()
            conn.execute("SAVEPOINT op")
            try:
                if kind == DELIVERY:
                    result = self._deliver(conn, txn, *payload)
                else:
                    result = run(payload, executor(conn, txn, self._handlers))
            except BaseException as exc:  # the op's own failure: undo only this op
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                cache.undo_op()
                outcomes.append((fut, loop, None, exc))
                continue
            conn.execute("RELEASE op")
            outcomes.append((fut, loop, result, None))
            all_changes.extend(txn.changes)
            remove.extend(txn.remove_blobs)
        now = time.time()
        published: list[Change] = []
        try:
            cache.flush(conn)
            published = self._log_changes(conn, now, all_changes)
            if now - self._last_prune > PRUNE_EVERY_SECONDS:
                conn.execute("DELETE FROM changes WHERE ts < ?", (now - KEEP_CHANGES_SECONDS,))
                self._last_prune = now
            conn.execute("COMMIT")
            self._flagsets.commit(cache.new_flagsets)
        except BaseException as exc:
            log.exception("store commit failed")
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            outcomes = [(f, lp, None, exc) for f, lp, _r, _e in outcomes]
            published, remove = [], []
        self._resolve(outcomes, published, remove)

    @staticmethod
    def _log_changes(
        conn: sqlite3.Connection, now: float, changes: list[tuple[str, int, str, list[int], int]]
    ) -> list[Change]:
        """Write the batch's changes to the change log, merged (store/changes.py). Ids are assigned
        here: inside our write transaction AUTOINCREMENT hands out consecutive values after
        sqlite_sequence."""
        merged = merge_changes(changes)
        if not merged:
            return []
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        base = row[0] if row else 0
        conn.executemany(
            "INSERT INTO changes (id, ts, user, mailbox_id, kind, uids, modseq) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(base + i + 1, now, m[0], m[1], m[2], ",".join(map(str, m[3])), m[4]) for i, m in enumerate(merged)],
        )
        return [Change(base + i + 1, m[0], m[1], m[2], tuple(m[3]), m[4]) for i, m in enumerate(merged)]

    def _resolve(
        self,
        outcomes: list[tuple[asyncio.Future[Any], asyncio.AbstractEventLoop, Any, BaseException | None]],
        changes: list[Change],
        remove: list[str],
    ) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
        for fut, loop, result, exc in outcomes:
            by_loop.setdefault(loop, []).append((fut, result, exc))
        if changes or remove:
            self._on_commit(changes, remove)
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, items)
            except RuntimeError:
                pass  # that loop is closed; nobody is waiting any more


def _settle(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, result, exc in items:
        if fut.done():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)


class ReaderPool:
    def __init__(self, db_path: Path, workers: int = 4) -> None:
        self._db_path = db_path
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mailcove-store-read")

    def connection(self) -> sqlite3.Connection:
        """This thread's read-only connection (a reader thread's, or the event loop's own for the
        small reads the store runs in place: frontend.SMALL_META)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(str(self._db_path), readonly=True)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self.connection()))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
