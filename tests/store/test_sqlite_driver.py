"""SQLite's driver (store/sqlite/driver.py): the writers of several processes on one database
(`serve --workers`) queue on a flock beside it, which the kernel hands over at once, instead of
meeting in SQLite's BEGIN IMMEDIATE, whose busy handler polls with sleeps of 1-100 ms; and small
reads run in place rather than in the reader threads."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

from mailcove.store.api import DeliveryTarget
from mailcove.store.sqlite import SqliteStore
from mailcove.store.sqlite.driver import WRITER_LOCK_SUFFIX

A = "a@example.test"
MESSAGE = b"Subject: hello\r\n\r\nbody\r\n"


async def test_a_write_waits_for_the_writer_lock_and_goes_on_when_it_is_released(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "data", watch_changes=False)
    await store.start()
    try:
        await store.create_account(A)
        await store.deliver(MESSAGE, [DeliveryTarget(A)])  # the lock file exists from the first write
        lock = os.open(tmp_path / "data" / f"mail.db{WRITER_LOCK_SUFFIX}", os.O_RDWR)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process's writer holds its turn
            pending = asyncio.ensure_future(store.deliver(MESSAGE, [DeliveryTarget(A)]))
            done, _ = await asyncio.wait({pending}, timeout=0.3)
            assert not done, "the writer wrote without taking its turn at the writer lock"
            # Readers never wait for writers (WAL), the lock included.
            inbox = await asyncio.wait_for(store.get_mailbox(A, "INBOX"), 5)
            assert inbox.messages == 1
            fcntl.flock(lock, fcntl.LOCK_UN)
            (result,) = await asyncio.wait_for(pending, 5)
            assert result.uid == 2
        finally:
            os.close(lock)
    finally:
        await store.close()


async def test_writers_on_one_database_each_commit_everything(tmp_path: Path) -> None:
    """Two stores (as two workers would have) on one data dir, writing at once: every delivery
    is committed once, with distinct UIDs."""
    first = SqliteStore(tmp_path / "data", watch_changes=False)
    await first.start()
    second = SqliteStore(tmp_path / "data", watch_changes=False)
    await second.start()
    try:
        await first.create_account(A)
        results = await asyncio.wait_for(asyncio.gather(
            *(s.deliver(MESSAGE, [DeliveryTarget(A)]) for _ in range(100) for s in (first, second))
        ), 30)
        uids = sorted(r.uid for (r,) in results)
        assert uids == list(range(1, 201))
    finally:
        await second.close()
        await first.close()



async def test_small_reads_run_in_place_while_every_reader_thread_is_busy(tmp_path: Path) -> None:
    """A mailbox, the metadata of a few messages or a few KB of one are read on the caller's own
    connection (frontend.SMALL_META): cheaper than the hop to a reader thread, and not queued
    behind a long read (a SEARCH scan) there. Larger reads still go to the reader threads."""
    import threading

    from mailcove.store.frontend import SMALL_META

    store = SqliteStore(tmp_path / "data", watch_changes=False)
    await store.start()
    release = threading.Event()
    try:
        await store.create_account(A)
        for _ in range(SMALL_META + 1):
            await store.deliver(MESSAGE, [DeliveryTarget(A)])
        box = await store.get_mailbox(A, "INBOX")
        readers = store._readers
        assert readers is not None
        busy = [asyncio.ensure_future(readers.run(lambda _conn: release.wait(10))) for _ in range(readers.workers)]
        await asyncio.sleep(0.05)
        assert (await asyncio.wait_for(store.get_mailbox(A, "INBOX"), 1)).messages == SMALL_META + 1
        metas = await asyncio.wait_for(store.fetch_meta(box.id, list(range(1, SMALL_META + 1))), 1)
        assert [m.uid for m in metas] == list(range(1, SMALL_META + 1))
        assert await asyncio.wait_for(store.read_message(box.id, 1, 0, 9), 1) == MESSAGE[:9]
        large = asyncio.ensure_future(store.fetch_meta(box.id, list(range(1, SMALL_META + 2))))
        done, _ = await asyncio.wait({large}, timeout=0.2)
        assert not done  # queued for a reader thread
        release.set()
        await asyncio.gather(*busy)
        assert len(await asyncio.wait_for(large, 5)) == SMALL_META + 1
    finally:
        release.set()
        await store.close()


BIG = b"Subject: big\r\n\r\n" + b"0123456789abcdef" * 6400 + b"\r\n"  # 100 KB: 25 WAL pages


def _wal_pages(data: Path) -> int:
    return os.path.getsize(data / "mail.db-wal") // 4096


async def test_a_commit_does_not_copy_the_wal_into_the_database(tmp_path: Path) -> None:
    """The writer's COMMITs only append to the WAL and sync it: past SQLite's default of 1,000
    pages its own COMMIT would checkpoint (copy and fsync mail.db) while every delivery of the
    batch waited. Here the checkpointer runs once and then rests an hour, so nothing copies."""
    data = tmp_path / "data"
    store = SqliteStore(data, watch_changes=False, checkpoint_pause=3600)
    await store.start()
    try:
        await store.create_account(A)
        await asyncio.sleep(0.2)  # the checkpointer's first turn is over
        before = os.path.getsize(data / "mail.db")
        for _ in range(60):  # 60 commits, 1,500 pages
            await store.deliver(BIG, [DeliveryTarget(A)])
        assert _wal_pages(data) > 1200
        assert os.path.getsize(data / "mail.db") - before < 1_000_000, "a COMMIT checkpointed"
    finally:
        await store.close()


async def test_the_checkpointer_copies_the_wal_into_the_database_after_commits(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = SqliteStore(data, watch_changes=False)
    await store.start()
    try:
        await store.create_account(A)
        await asyncio.gather(*(store.deliver(BIG, [DeliveryTarget(A)]) for _ in range(60)))
        for _ in range(100):  # no further writes: the copy is the checkpointer's doing
            if os.path.getsize(data / "mail.db") > 60 * len(BIG):
                break
            await asyncio.sleep(0.05)
        assert os.path.getsize(data / "mail.db") > 60 * len(BIG)
        inbox = await store.get_mailbox(A, "INBOX")
        assert inbox.messages == 60
    finally:
        await store.close()
