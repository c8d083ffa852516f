"""PostgresStore: the MailStore protocol over PostgreSQL (see store/api.py for the contract).

Several `mailcove serve` nodes may share one database. Everything they must agree on lives in
it: accounts, mailboxes with their UID/MODSEQ counters, message bytes, the outbound queue. The
node keeps only a spool directory for messages in transit (data_dir/tmp) and caches that the
change bus keeps current. Acknowledged means committed with synchronous_commit on (PostgreSQL's
default): the commit record is flushed to the WAL on disk before COMMIT returns."""

from __future__ import annotations

import asyncio
import logging
import mmap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, Unpack

import asyncpg

from mailcove.core.errors import DiskFull
from mailcove.message import scan as scan_message
from mailcove.message.scanner import scan_prefixed
from mailcove.store.api import (
    NO_PREFIX,
    MessagePrefix,
)
from mailcove.store.blobs import BlobDir
from mailcove.store.changes import Change
from mailcove.store.frontend import Added, Frontend, NewMessage, StoreOptions, in_memory_or_file
from mailcove.store.postgres.driver import DeliveryBatcher, Driver
from mailcove.store.postgres.flags import FlagCache
from mailcove.store.postgres.schema import check_schema
from mailcove.store.postgres.statements import CHUNK, HANDLERS, Body, deliver_batch, insert_blob
from mailcove.store.postgres.watch import ChangeListener
from mailcove.store.sansio import Rule
from mailcove.store.spool import Spool

log = logging.getLogger("mailcove.store")
T = TypeVar("T")

# Messages smaller than this are scanned (MIME structure, envelope) on the event loop: handing
# them to a thread costs more than the scan. Larger ones are scanned in a worker thread.
_SCAN_INLINE_MAX = 64 * 1024


class PostgresStore(Frontend):
    def __init__(self, dsn: str, *, data_dir: Path, pool_size: int = 10, **options: Unpack[StoreOptions]) -> None:
        if not dsn:
            raise ValueError('[store] backend = "postgres" needs [store] dsn = "postgresql://..."')
        super().__init__(data_dir, **options)
        self.dsn = dsn
        # Only the spool half of BlobDir is used: in-transit messages in data_dir/tmp.
        self._spool_dir = BlobDir(self.data_dir / "blobs")
        self._pool_size = max(2, pool_size)
        self.flags = FlagCache()
        self._pool: asyncpg.Pool | None = None
        self._driver: Driver | None = None
        self._batcher: DeliveryBatcher | None = None
        self._listener: ChangeListener | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._spool_dir.tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._pool = await asyncpg.create_pool(
            self.dsn, min_size=min(2, self._pool_size), max_size=self._pool_size, command_timeout=None
        )
        try:
            async with self._pool.acquire() as conn:
                await check_schema(conn)
            self._driver = Driver(
                self._pool, self.data_dir, self._min_free, HANDLERS, self.flags, self._inline_max
            )
            self._batcher = DeliveryBatcher(self._pool, deliver_batch)
            self._batcher.start()
            if self._watch:
                self._listener = ChangeListener(self.dsn, self.changes, self._pool)
                await self._listener.start()
        except BaseException:
            await self.close()
            raise
        self._start_indexer()

    async def close(self) -> None:
        await self._stop_indexer()
        if self._batcher is not None:
            await self._batcher.close()
            self._batcher = None
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), 10.0)
            except (TimeoutError, Exception):
                self._pool.terminate()
            self._pool = None
        self._driver = None

    async def collect_orphans(self, min_age: float = 3600.0) -> int:
        """Remove bodies uploaded ahead of a delivery that never committed (refs 0: a node died
        between the upload and the delivery), and this node's leftover spool files."""
        pool = self._running(self._pool)
        status = await pool.execute(
            "DELETE FROM blobs WHERE refs <= 0 AND created < $1", time.time() - min_age
        )
        removed = int(status.split()[-1])
        return removed + await asyncio.to_thread(self._spool_dir.collect_orphans, set(), min_age)

    async def backup(self, dest: Path) -> list[str]:
        """A pg_dump archive of the whole database (backup.py): the bytes of every message are
        in it, since they live in the database."""
        from mailcove.store.postgres.backup import backup_store

        return await backup_store(self.dsn, Path(dest))

    async def _write(self, rule: Callable[..., Rule[T]], *args: Any) -> T:
        result, changes = await self._running(self._driver).run(rule, *args)
        if changes:
            await self._published(changes)
        return result

    async def _read(self, rule: Callable[..., Rule[T]], *args: Any) -> T:
        return await self._running(self._driver).read(rule, *args)

    async def _published(self, changes: list[Change]) -> None:
        # Without a listener (one-shot CLI stores) nobody hears NOTIFY here: publish directly.
        if self._listener is None or not await self._listener.wait_published(changes):
            self.changes.publish(changes)

    # --- spooling ----------------------------------------------------------------------------

    def new_spool(self, *, normalize_newlines: bool = False) -> Spool:
        return Spool(self._spool_dir.new_tmp_path, self._inline_max, normalize_newlines=normalize_newlines)

    # --- adding messages ---------------------------------------------------------------------

    async def _add_bytes(self, data: bytes, m: NewMessage) -> Added:
        info = b""
        if m.targets:  # queue-only messages are never read through IMAP, so they are not scanned
            if len(data) <= _SCAN_INLINE_MAX:
                info = scan_prefixed(m.prefix.local, data, m.prefix.skip).to_bytes()
            else:
                info = await asyncio.to_thread(lambda: scan_prefixed(m.prefix.local, data, m.prefix.skip).to_bytes())
        return await self._deliver(m.targets, len(data), data, None, info, m.when, m.fallback, m.outbound, m.prefix)

    async def _deliver(self, *args: Any) -> Added:
        if self._running(self._driver)._disk_low():
            raise DiskFull("free disk space is below the configured floor")
        assert self._batcher is not None
        result, changes = await self._batcher.submit(args)
        if changes:
            await self._published(changes)
        return result

    async def _add_file(self, spool: Spool, m: NewMessage) -> Added:
        """A large message: upload its bytes (the body as received; the prefix goes with the
        delivery) in CHUNK-sized rows in a transaction of its own (refs 0), then deliver
        referencing it. The delivery transaction, which holds the account and mailbox locks,
        never waits for megabytes to travel."""
        size = spool.size
        try:
            info = await asyncio.to_thread(_scan_file, spool.path, m.prefix) if m.targets else b""
            blob_id = await self._upload(spool.path, size, info)
        finally:
            spool.discard()
        try:
            return await self._deliver(m.targets, size, None, blob_id, info, m.when, m.fallback, m.outbound, m.prefix)
        except BaseException:
            # Not referenced: remove it now rather than waiting for collect_orphans.
            await self._drop_unreferenced([(size, (None, blob_id, info))])
            raise

    async def _upload(self, path: Path, size: int, info: bytes) -> int:
        pool = self._running(self._pool)
        async with pool.acquire() as conn, conn.transaction():
            blob_id = await insert_blob(conn, size, 0, None, info, True)
            with open(path, "rb") as f:
                seq = 0
                while True:
                    chunk = await asyncio.to_thread(f.read, CHUNK)
                    if not chunk:
                        break
                    await conn.execute(
                        "INSERT INTO blob_chunks (blob_id, seq, data) VALUES ($1, $2, $3)", blob_id, seq, chunk
                    )
                    seq += 1
        return blob_id

    async def _place_bodies(self, sources: Sequence[bytes | Spool], scan: bool) -> list[tuple[int, Body]]:
        """A spooled file is uploaded now, in a transaction of its own (refs 0: the write that
        references it sets them); bytes go into the write itself (AddBody stores them inline or
        as chunk rows)."""
        out: list[tuple[int, Body]] = []
        try:
            for source in in_memory_or_file(sources):
                if isinstance(source, Spool):
                    info = await asyncio.to_thread(_scan_file, source.path, NO_PREFIX) if scan else b""
                    blob_id = await self._upload(source.path, source.size, info)
                    source.discard()
                    out.append((source.size, (None, blob_id, info)))
                else:
                    info = await asyncio.to_thread(lambda d=source: scan_message(d).to_bytes()) if scan else b""
                    out.append((len(source), (source, None, info)))
        except BaseException:
            await self._drop_unreferenced(out)
            raise
        return out

    async def _drop_unreferenced(self, bodies: Sequence[tuple[int, Body]]) -> None:
        uploaded = [body[1] for _size, body in bodies if body[1] is not None]
        if not uploaded:
            return
        try:
            await self._running(self._pool).execute(
                "DELETE FROM blobs WHERE id = ANY($1::bigint[]) AND refs <= 0", uploaded
            )
        except Exception:
            log.warning("could not remove unreferenced bodies %s; collect_orphans will", uploaded)


def _scan_file(path: Path, prefix: MessagePrefix) -> bytes:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return scan_prefixed(prefix.local, mm, prefix.skip).to_bytes()
