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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg

from mailcove.core.errors import DiskFull, StoreError
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
from mailcove.store.postgres import statements as ops
from mailcove.store.postgres.driver import DeliveryBatcher, Writer
from mailcove.store.postgres.flags import FlagCache
from mailcove.store.postgres.schema import check_schema
from mailcove.store.postgres.watch import ChangeListener
from mailcove.store.rules import messages, queue
from mailcove.store.spool import Spool

log = logging.getLogger("mailcove.store")

# Messages smaller than this are scanned (MIME structure, envelope) on the event loop: handing
# them to a thread costs more than the scan. Larger ones are scanned in a worker thread.
_SCAN_INLINE_MAX = 64 * 1024


class PostgresStore(Frontend):
    def __init__(
        self,
        dsn: str,
        *,
        data_dir: Path,
        inline_max: int = 128 * 1024,
        min_free_bytes: int = 0,
        default_quota_bytes: int = 0,
        default_quota_messages: int = 0,
        pool_size: int = 10,
        watch_changes: bool = True,
    ) -> None:
        if not dsn:
            raise ValueError('[store] backend = "postgres" needs [store] dsn = "postgresql://..."')
        self.dsn = dsn
        self.data_dir = Path(data_dir)
        # Only the spool half of BlobDir is used: in-transit messages in data_dir/tmp.
        self._spool_dir = BlobDir(self.data_dir / "blobs")
        self._inline_max = inline_max
        self._min_free = min_free_bytes
        self._default_quota = (default_quota_bytes, default_quota_messages)
        self._pool_size = max(2, pool_size)
        self._watch = watch_changes
        self.changes = ChangeBus()
        self.flags = FlagCache()
        self._pool: asyncpg.Pool | None = None
        self._writer: Writer | None = None
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
            self._writer = Writer(
                self._pool, self.data_dir, self._min_free, ops.HANDLERS, self.flags, self._inline_max
            )
            self._batcher = DeliveryBatcher(self._pool, ops.deliver_batch)
            self._batcher.start()
            if self._watch:
                self._listener = ChangeListener(self.dsn, self.changes, self._pool)
                await self._listener.start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
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
        self._writer = None

    async def collect_orphans(self, min_age: float = 3600.0) -> int:
        """Remove bodies uploaded ahead of a delivery that never committed (refs 0: a node died
        between the upload and the delivery), and this node's leftover spool files."""
        pool = self._need_pool()
        status = await pool.execute(
            "DELETE FROM blobs WHERE refs <= 0 AND created < $1", time.time() - min_age
        )
        removed = int(status.split()[-1])
        return removed + await asyncio.to_thread(self._spool_dir.collect_orphans, set(), min_age)

    async def backup(self, dest: Path) -> list[str]:
        """A pg_dump archive (custom format: `pg_restore -d NEWDB mailcove.pgdump` restores it)
        of the whole database, consistent as of one snapshot while deliveries go on. The bytes of
        every message are in it, since they live in the database."""
        import shutil

        dest = Path(dest)
        pg_dump = shutil.which("pg_dump")
        if pg_dump is None:
            raise StoreError("pg_dump is not installed (Debian: postgresql-client)", code=451, enhanced="4.3.0")
        dest.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = "mailcove.pgdump"
        dsn, env = _dsn_without_password(self.dsn)
        proc = await asyncio.create_subprocess_exec(
            pg_dump, "--format=custom", "--no-owner", "--file", str(dest / name), "--dbname", dsn,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
        )
        _out, err = await proc.communicate()
        if proc.returncode != 0:
            why = err.decode(errors="replace").strip()[:500]
            raise StoreError(f"pg_dump failed: {why}", code=451, enhanced="4.3.0")
        return [name]

    def _need_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store not started")
        return self._pool

    async def _write(self, op: Any, *args: Any) -> Any:
        if self._writer is None:
            raise RuntimeError("store not started")
        result, changes = await self._writer.run(op, *args)
        if changes:
            await self._published(changes)
        return result

    async def _read(self, rule: Any, *args: Any) -> Any:
        if self._writer is None:
            raise RuntimeError("store not started")
        return await self._writer.read(rule, *args)

    async def _published(self, changes: list[Change]) -> None:
        # Without a listener (one-shot CLI stores) nobody hears NOTIFY here: publish directly.
        if self._listener is None or not await self._listener.wait_published(changes):
            self.changes.publish(changes)

    # --- spooling ----------------------------------------------------------------------------

    def new_spool(self, *, normalize_newlines: bool = False) -> Spool:
        return Spool(self._spool_dir.new_tmp_path, self._inline_max, normalize_newlines=normalize_newlines)

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
        info = b""
        if targets:  # queue-only messages are never read through IMAP, so they are not scanned
            if len(data) <= _SCAN_INLINE_MAX:
                info = scan_prefixed(prefix.local, data, prefix.skip).to_bytes()
            else:
                info = await asyncio.to_thread(lambda: scan_prefixed(prefix.local, data, prefix.skip).to_bytes())
        return await self._deliver(targets, len(data), data, None, info, when, fallback_to_inbox, outbound, prefix)

    async def _deliver(self, *args: Any) -> tuple[list[AppendResult], int | None]:
        if self._writer is None:
            raise RuntimeError("store not started")
        if self._writer._disk_low():
            raise DiskFull("free disk space is below the configured floor")
        assert self._batcher is not None
        result, changes = await self._batcher.submit(args)
        if changes:
            await self._published(changes)
        return result

    async def _add_file(
        self,
        spool: Spool,
        targets: list[tuple[str, str, frozenset[str]]],
        when: float,
        fallback: bool,
        outbound: tuple[str, list[tuple[str, str | None, str]]] | None,
        prefix: MessagePrefix,
    ) -> tuple[list[AppendResult], int | None]:
        """A large message: upload its bytes (the body as received; the prefix goes with the
        delivery) in CHUNK-sized rows in a transaction of its own (refs 0), then deliver
        referencing it. The delivery transaction, which holds the account and mailbox locks,
        never waits for megabytes to travel."""
        size = spool.size
        try:
            info = b""
            if targets:
                def scan_file() -> bytes:
                    with open(spool.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                        return scan_prefixed(prefix.local, mm, prefix.skip).to_bytes()

                info = await asyncio.to_thread(scan_file)
            blob_id = await self._upload(spool.path, size, info)
        finally:
            spool.discard()
        try:
            return await self._deliver(targets, size, None, blob_id, info, when, fallback, outbound, prefix)
        except BaseException:
            # Not referenced: remove it now rather than waiting for collect_orphans.
            try:
                await self._need_pool().execute("DELETE FROM blobs WHERE id = $1 AND refs <= 0", blob_id)
            except Exception:
                log.warning("could not remove unreferenced body %s; collect_orphans will", blob_id)
            raise

    async def _upload(self, path: Path, size: int, info: bytes) -> int:
        pool = self._need_pool()
        async with pool.acquire() as conn, conn.transaction():
            blob_id = await ops.insert_blob(conn, size, 0, None, info, True)
            with open(path, "rb") as f:
                seq = 0
                while True:
                    chunk = await asyncio.to_thread(f.read, ops.CHUNK)
                    if not chunk:
                        break
                    await conn.execute(
                        "INSERT INTO blob_chunks (blob_id, seq, data) VALUES ($1, $2, $3)", blob_id, seq, chunk
                    )
                    seq += 1
        return blob_id

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
        rows: list[messages.ImportRow] = []
        uploaded: list[int] = []
        try:
            for item in items:
                when = now if item.internaldate is None else item.internaldate
                source = item.source
                if isinstance(source, Spool):
                    source.finish()
                    if not source.inline:
                        spool = source

                        def scan_file(path: Path = spool.path) -> bytes:
                            with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                                return scan(mm).to_bytes()

                        info = await asyncio.to_thread(scan_file)
                        blob_id = await self._upload(spool.path, spool.size, info)
                        spool.discard()
                        uploaded.append(blob_id)
                        rows.append((item.uid, spool.size, (None, blob_id, info), frozenset(item.flags), when))
                        continue
                    source = source.getvalue()
                data = bytes(source)
                info = await asyncio.to_thread(lambda d=data: scan(d).to_bytes())
                rows.append((item.uid, len(data), (data, None, info), frozenset(item.flags), when))
            return await self._write(
                messages.import_messages, user, normalize_name(mailbox), rows, uidvalidity, uidnext
            )
        finally:
            if uploaded:
                # Bodies of skipped (or failed) items were never referenced.
                await self._need_pool().execute(
                    "DELETE FROM blobs WHERE id = ANY($1::bigint[]) AND refs <= 0", uploaded
                )

    # --- copying to another backend (mailcove db copy) -----------------------------------------

    async def restore_messages(self, user: str, mailbox: str, stored: Sequence[StoredMessage]) -> None:
        if not stored:
            return
        name = normalize_name(mailbox)

        def prepare() -> list[messages.RestoreRow]:
            return [
                (m.uid, frozenset(m.flags), m.modseq, m.internaldate, len(m.data), (m.data, None, _info(m.data)))
                for m in stored
            ]

        rows = await asyncio.to_thread(prepare)
        await self._write(messages.restore_messages, user, name, rows)

    async def restore_queue(self, entry: QueueState) -> int:
        return await self._write(
            queue.restore_queue, entry, envelope_to_json(entry.item.envelope), (entry.data, None, b"")
        )


def _dsn_without_password(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN minus its password, which goes to the child in PGPASSWORD instead: a command
    line is visible to every local user (ps), the environment is not."""
    import os
    from urllib.parse import unquote, urlsplit, urlunsplit

    env = dict(os.environ)
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn, env
    env["PGPASSWORD"] = unquote(parts.password)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = (parts.username or "") + "@" + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), env


def _info(data: bytes) -> bytes:
    return scan(data).to_bytes()
