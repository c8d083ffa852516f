"""The directory on PostgreSQL, chosen with `[store] backend = "postgres"` (same database, `dsn`).

It is the SQLite directory (sql.py) with another database under it: the snapshot, the read API,
the password handling and every admin write transaction are inherited unchanged, so both
backends validate and store exactly the same way. What differs:

- **Connection.** The inherited write transactions are synchronous functions `tx(c)` that call
  `c.execute(sql, params)` on the directory's one database thread. `_Conn` gives them that
  sqlite3-shaped call over an asyncpg connection: each statement is handed to the event loop
  (`run_coroutine_threadsafe`) and the thread waits for it. The loop never waits for the thread
  (`_run` is `run_in_executor`), so this cannot deadlock. `?` placeholders become `$n`, and the
  one SQLite-only statement (`INSERT OR IGNORE`) becomes `ON CONFLICT DO NOTHING`. Writing every
  transaction twice, once per dialect, would let the two backends drift apart.
- **Serialised writes.** SQLite's `BEGIN IMMEDIATE` makes two admin writes take turns, so a
  check-then-insert (add a domain that must not exist) cannot race. Here every write takes one
  transaction-scoped advisory lock first: the same guarantee across every node and admin CLI.
- **Change detection.** Every write bumps `directory_version` and sends `NOTIFY
  mailcove_directory` in its transaction (delivered at commit). Each directory LISTENs on its
  own connection and reloads its snapshot at the next call after a notification, so a change
  made on one node is visible on every other one at once instead of after a poll. While the
  LISTEN connection is up the version is also checked every `SAFETY_INTERVAL` seconds (one
  cheap query, only when someone asks), in case a notification was lost; if it drops, checks
  fall back to every `reload_interval` until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mailcove.directory.errors import DirectoryError
from mailcove.directory.postgres_schema import CHANNEL, COMPONENT, MIGRATIONS
from mailcove.directory.snapshot import Snapshot, UserRecord
from mailcove.directory.sql import _RULE_SELECT, SqliteDirectory, _row_rule

if TYPE_CHECKING:
    from mailcove.config.settings import Settings

log = logging.getLogger("mailcove.directory")
T = TypeVar("T")

# Advisory lock key of directory writes ("mcdir").
_WRITE_LOCK = 0x6D63646972
# Seconds between version checks while LISTEN works: only a safety net for a lost notification.
SAFETY_INTERVAL = 30.0
# Seconds one statement may take before the directory reports the database as unavailable.
STATEMENT_TIMEOUT = 30.0
_RECONNECT_EVERY = 5.0


def translate(sql: str) -> str:
    """The SQLite dialect of sql.py's statements in PostgreSQL's."""
    if sql.lstrip().upper().startswith("INSERT OR IGNORE"):
        sql = re.sub(r"(?i)^\s*INSERT OR IGNORE", "INSERT", sql) + " ON CONFLICT DO NOTHING"
    if "?" in sql:
        parts = sql.split("?")
        sql = parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], start=1))
    return sql


class _Result:
    """What sqlite3's cursor offers the inherited transactions: fetchone, fetchall, iteration."""

    __slots__ = ("_rows",)

    def __init__(self, rows: Sequence[Any]) -> None:
        self._rows = rows

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return list(self._rows)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class _Conn:
    """A sqlite3-shaped, blocking view of one asyncpg connection, for the directory's thread."""

    def __init__(self, conn: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.pg = conn
        self._loop = loop

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(STATEMENT_TIMEOUT + 5)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Result:
        return _Result(self.call(self.pg.fetch(translate(sql), *params, timeout=STATEMENT_TIMEOUT)))


class PostgresDirectory(SqliteDirectory):
    def __init__(self, dsn: str, **kwargs: Any) -> None:
        # The inherited constructor wants a path; it only keeps it (for messages), never opens it.
        super().__init__(Path("postgresql"), **kwargs)
        self.dsn = dsn
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pgconn: _Conn | None = None
        self._listener: Any = None
        self._listen_task: asyncio.Task[None] | None = None
        self._poll_interval = self.reload_interval

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> PostgresDirectory:  # type: ignore[override]
        d = settings.directory
        kwargs.setdefault("postmaster", d.postmaster or None)
        kwargs.setdefault("reload_interval", d.reload_interval)
        kwargs.setdefault("relay_from_localhost", d.relay_from_localhost)
        return cls(settings.store.dsn, auth=settings.auth, **kwargs)

    def __repr__(self) -> str:
        return f"PostgresDirectory({_redact(self.dsn)!r})"

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        import asyncpg

        from mailcove.store.postgres.schema import check_schema

        self._loop = asyncio.get_running_loop()
        conn = await asyncpg.connect(self.dsn)
        try:
            await check_schema(conn, COMPONENT, MIGRATIONS)
        except BaseException:
            await conn.close()
            raise
        self._pgconn = _Conn(conn, self._loop)
        self._conn = self._pgconn  # type: ignore[assignment]  # the inherited code checks it is set
        await self._listen()
        await self._refresh()
        self._started = True

    async def close(self) -> None:
        if self._listen_task is not None:
            self._listen_task.cancel()
            with contextlib.suppress(BaseException):
                await self._listen_task
            self._listen_task = None
        if self._listener is not None:
            # Our own close is not a lost connection: no warning, no reconnect.
            self._listener.remove_termination_listener(self._on_listener_lost)
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None
        if self._pgconn is not None:
            with contextlib.suppress(Exception):
                await self._pgconn.pg.close()
            self._pgconn = None
            self._conn = None
        self._db.shutdown(wait=True)
        self.verifier.close()
        self.hostnames.close()
        self._started = False

    # --- change notification ---------------------------------------------------------------------

    async def _listen(self) -> None:
        import asyncpg

        try:
            listener = await asyncpg.connect(self.dsn)
            await listener.add_listener(CHANNEL, self._on_notify)
            listener.add_termination_listener(self._on_listener_lost)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("directory: cannot LISTEN (%s); checking for changes every %.1f s", exc, self._poll_interval)
            self.reload_interval = self._poll_interval
            self._schedule_relisten()
            return
        self._listener = listener
        self.reload_interval = max(self._poll_interval, SAFETY_INTERVAL)
        # A change made while we were not listening must not wait for the safety interval.
        self._next_check = 0.0

    def _on_notify(self, *_args: Any) -> None:
        self._next_check = 0.0

    def _on_listener_lost(self, *_args: Any) -> None:
        log.warning("directory: LISTEN connection lost; polling every %.1f s until it is back", self._poll_interval)
        self._listener = None
        self.reload_interval = self._poll_interval
        self._next_check = 0.0
        self._schedule_relisten()

    def _schedule_relisten(self) -> None:
        if self._listen_task is None or self._listen_task.done():
            self._listen_task = asyncio.get_running_loop().create_task(self._relisten())

    async def _relisten(self) -> None:
        await asyncio.sleep(_RECONNECT_EVERY)
        self._listen_task = None
        await self._listen()

    # --- database access on the directory thread ---------------------------------------------------

    def _begin(self, sql: str) -> _Conn:
        """Start a transaction, reconnecting first if the connection was lost (the server
        restarted or failed over). Only BEGIN is retried: nothing has happened yet, so running
        it again on a new connection is safe; a connection lost mid-transaction fails that
        one operation, and the next one reconnects."""
        import asyncpg

        c = self._pgconn
        assert c is not None, "directory not started"
        for attempt in (1, 2):
            try:
                if c.pg.is_closed():
                    c.pg = c.call(asyncpg.connect(self.dsn))
                c.execute(sql)
                return c
            except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
                    asyncpg.exceptions.OperatorInterventionError) as exc:
                if attempt == 2:
                    raise
                log.warning("directory: database connection lost (%s); reconnecting", exc)
                with contextlib.suppress(Exception):
                    c.call(c.pg.close(timeout=1))
        raise AssertionError("unreachable")

    def _load_if_changed(self, force: bool) -> Snapshot | None:
        c = self._begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            (version,) = c.execute("SELECT version FROM directory_version WHERE id = 1").fetchone()
            if not force and version == self._data_version:
                return None
            domains = {n: a for n, a in c.execute("SELECT name, alias_of FROM domains")}
            users = {
                a: UserRecord(a, p, bool(d), cr)
                for a, p, d, cr in c.execute("SELECT address, password, disabled, created FROM users")
            }
            aliases: dict[str, list[str]] = {}
            for s, t in c.execute("SELECT source, target FROM aliases ORDER BY source, position"):
                aliases.setdefault(s, []).append(t)
            rules = [_row_rule(r) for r in c.execute(_RULE_SELECT)]
        finally:
            with contextlib.suppress(Exception):
                c.execute("COMMIT")
        self._data_version = version
        return Snapshot(domains, users, {k: tuple(v) for k, v in aliases.items()}, rules, postmaster=self.postmaster)

    def _exec_write(self, fn: Callable[[Any], T]) -> T:
        c = self._begin("BEGIN")
        try:
            c.execute("SELECT pg_advisory_xact_lock(?)", (_WRITE_LOCK,))
            result = fn(c)
            (version,) = c.execute(
                "UPDATE directory_version SET version = version + 1 WHERE id = 1 RETURNING version"
            ).fetchone()
            c.execute("SELECT pg_notify(?, ?)", (CHANNEL, str(version)))
        except BaseException:
            with contextlib.suppress(Exception):
                c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
        return result

    def _exec_read(self, fn: Callable[[Any], T]) -> T:
        c = self._begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            return fn(c)
        finally:
            with contextlib.suppress(Exception):
                c.execute("COMMIT")


# --- copying a directory between backends (`mailcove db copy`) ----------------------------------


@dataclass(frozen=True, slots=True)
class DirectoryDump:
    """Every row of a directory, password hashes included (never passwords: none are stored)."""

    domains: list[tuple[Any, ...]]
    users: list[tuple[Any, ...]]
    aliases: list[tuple[Any, ...]]
    access: list[tuple[Any, ...]]


_DUMP = {
    # primary domains before their aliases: alias_of references them
    "domains": ("SELECT name, alias_of, created FROM domains ORDER BY alias_of IS NOT NULL, name",
                "INSERT INTO domains (name, alias_of, created) VALUES (?, ?, ?)"),
    "users": ("SELECT address, local, domain, password, disabled, created, changed FROM users ORDER BY address",
              "INSERT INTO users (address, local, domain, password, disabled, created, changed)"
              " VALUES (?, ?, ?, ?, ?, ?, ?)"),
    "aliases": ("SELECT source, target, position FROM aliases ORDER BY source, position",
                "INSERT INTO aliases (source, target, position) VALUES (?, ?, ?)"),
    "access": ("SELECT tag, key, pattern, action, reply_code, reply_enhanced, reply_text, position FROM access"
               " ORDER BY position",
               "INSERT INTO access (tag, key, pattern, action, reply_code, reply_enhanced, reply_text, position)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
}


async def export_directory(d: SqliteDirectory) -> DirectoryDump:
    """Read every row of `d` (either backend) in one consistent read."""

    def q(c: Any) -> DirectoryDump:
        return DirectoryDump(**{t: [tuple(r) for r in c.execute(sel)] for t, (sel, _ins) in _DUMP.items()})

    return await d._read(q)


async def import_directory(d: SqliteDirectory, dump: DirectoryDump) -> None:
    """Write `dump` into `d` (either backend), which must be empty, in one transaction."""

    def tx(c: Any) -> None:
        if c.execute("SELECT 1 FROM domains").fetchone() or c.execute("SELECT 1 FROM access").fetchone():
            raise DirectoryError("the target directory is not empty")
        for table, (_sel, ins) in _DUMP.items():
            for row in getattr(dump, table):
                c.execute(ins, _typed(table, row))

    await d._write(tx)


def _typed(table: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
    # SQLite may hand back an integer for a REAL column holding a whole number; PostgreSQL's
    # double precision parameters want floats.
    if table == "domains":
        return (row[0], row[1], float(row[2]))
    if table == "users":
        return (*row[:4], int(row[4]), float(row[5]), float(row[6]))
    return row


def _redact(dsn: str) -> str:
    return re.sub(r"://([^:@/]+):[^@/]*@", r"://\1:***@", dsn)
