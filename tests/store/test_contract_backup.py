"""MailStore.backup(dest): the contract every backend keeps, and what the SQLite one writes.

Contract: the call works while the store is in use, writes only into the new directory `dest`,
and returns the non-empty files it wrote (relative to `dest`). What those files are is the
backend's business (SQLite: mail.db and the blob files it references; PostgreSQL: a dump)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mailcove.store.api import DeliveryTarget, MailStore
from mailcove.store.sqlite import SqliteStore
from mailcove.store.sqlite.backup import hold_blobs

A = "a@hamap.local"
SMALL = b"Subject: small\r\n\r\nhello\r\n"
BIG = b"Subject: big\r\n\r\n" + b"x" * 5000 + b"\r\n"


async def _deliver_big(store: MailStore) -> int:
    spool = store.new_spool()  # a spooled message beyond inline_max becomes a blob file
    spool.write(BIG)
    return (await store.deliver(spool, [DeliveryTarget(A)]))[0].uid


async def test_backup_writes_files_into_dest(make_store: Callable[..., MailStore], tmp_path: Path) -> None:
    store = make_store(inline_max=1024)
    await store.start()
    try:
        await store.create_account(A)
        await store.deliver(SMALL, [DeliveryTarget(A)])
        await _deliver_big(store)
        dest = tmp_path / "backup"
        names = await store.backup(dest)
        assert names
        for name in names:
            p = dest / name
            assert p.is_file() and p.stat().st_size > 0, name
            assert p.resolve().is_relative_to(dest.resolve())
        # the store is still usable afterwards
        await store.deliver(SMALL, [DeliveryTarget(A)])
    finally:
        await store.close()


async def test_sqlite_backup_round_trips_with_uids_and_blobs(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "data", inline_max=1024, change_poll_ms=20)
    await store.start()
    try:
        await store.create_account(A)
        r_small = (await store.deliver(SMALL, [DeliveryTarget(A)]))[0]
        big_uid = await _deliver_big(store)
        box = await store.get_mailbox(A, "INBOX")
        names = await store.backup(tmp_path / "backup")
        assert "mail.db" in names and any(n.startswith("blobs/") for n in names)
        # while a backup holds the blobs, an expunge leaves the file for collect_orphans
        big_path = await store.message_path(box.id, big_uid)
        assert big_path is not None
        with hold_blobs(store.blobs):
            await store.expunge(box.id, [big_uid])
            assert big_path.exists()
        assert await store.collect_orphans(min_age=0) >= 1  # type: ignore[call-arg]
        assert not big_path.exists()
    finally:
        await store.close()
    copy = SqliteStore(tmp_path / "backup", change_poll_ms=20)
    await copy.start()
    try:
        restored = await copy.get_mailbox(A, "INBOX")
        assert restored.uidvalidity == box.uidvalidity
        assert [e.uid for e in await copy.index(restored.id)] == [r_small.uid, big_uid]
        assert await copy.read_message(restored.id, r_small.uid) == SMALL
        assert await copy.read_message(restored.id, big_uid) == BIG
    finally:
        await copy.close()
