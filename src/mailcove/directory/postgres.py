"""The directory in PostgreSQL, chosen with `[store] backend = "postgres"` (same database, `dsn`).

The directory itself (snapshot, lookups, admin verbs) is database.py's and its rules are
rules.py's, as for SQLite; this module is PostgreSQL's part: each statement's SQL and the driver.

- **Driver.** Rules run on the event loop over one asyncpg connection, one transaction at a time.
  A connection lost (a restart or failover) is replaced before the next transaction's BEGIN;
  only BEGIN is retried, since nothing has happened yet.
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
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mailcove.directory import rules as dr
from mailcove.directory.database import DatabaseDirectory, DirectoryDump, export_directory, import_directory
from mailcove.directory.postgres_schema import CHANNEL, COMPONENT, MIGRATIONS
from mailcove.directory.snapshot import Snapshot
from mailcove.store.sansio import Handlers, Rule, run_async

if TYPE_CHECKING:
    from mailcove.config.settings import Settings

__all__ = ["DirectoryDump", "PostgresDirectory", "export_directory", "import_directory"]

log = logging.getLogger("mailcove.directory")
T = TypeVar("T")

# Advisory lock key of directory writes ("mcdir").
_WRITE_LOCK = 0x6D63646972
# Seconds between version checks while LISTEN works: only a safety net for a lost notification.
SAFETY_INTERVAL = 30.0
# Seconds one statement may take before the directory reports the database as unavailable.
STATEMENT_TIMEOUT = 30.0
_RECONNECT_EVERY = 5.0
_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"


class _Connection:
    """The directory's one database connection; `pg` is replaced when it was lost."""

    def __init__(self, pg: Any) -> None:
        self.pg = pg
        self.turn = asyncio.Lock()  # one transaction at a time


class PostgresDirectory(DatabaseDirectory):
    def __init__(self, dsn: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dsn = dsn
        self.path = Path("postgresql")  # named in messages only; nothing is opened there
        self._data_version: int | None = None
        self._pgconn: _Connection | None = None
        self._listener: Any = None
        self._listen_task: asyncio.Task[None] | None = None
        self._poll_interval = self.reload_interval

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> PostgresDirectory:
        return cls(settings.store.dsn, **cls._options(settings, kwargs))

    def __repr__(self) -> str:
        return f"PostgresDirectory({_redact(self.dsn)!r})"

    async def backup(self, dest: Path) -> list[str]:
        """Nothing of its own: the directory's tables are in the store's database, which the
        store's backup (pg_dump) already holds."""
        return []

    # --- lifecycle -------------------------------------------------------------------------------

    async def _connect(self) -> None:
        from mailcove.store.postgres.schema import check_schema

        conn = await self._new_connection()
        try:
            await check_schema(conn, COMPONENT, MIGRATIONS)
        except BaseException:
            await conn.close()
            raise
        self._pgconn = _Connection(conn)
        await self._listen()

    async def _new_connection(self) -> Any:
        import asyncpg

        return await asyncpg.connect(self.dsn, command_timeout=STATEMENT_TIMEOUT)

    async def _disconnect(self) -> None:
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

    # --- the driver: rules on one connection, one transaction at a time -----------------------------

    @contextlib.asynccontextmanager
    async def _transaction(self, begin: str) -> AsyncIterator[Any]:
        """A transaction on the directory's connection, reconnecting first if the connection was
        lost (the server restarted or failed over). Only BEGIN is retried: nothing has happened
        yet, so running it again on a new connection is safe; a connection lost mid-transaction
        fails that one operation, and the next one reconnects."""
        import asyncpg

        c = self._pgconn
        assert c is not None, "directory not started"
        async with c.turn:
            for attempt in (1, 2):
                try:
                    if c.pg.is_closed():
                        c.pg = await self._new_connection()
                    await c.pg.execute(begin)
                    break
                except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
                        asyncpg.exceptions.OperatorInterventionError) as exc:
                    if attempt == 2:
                        raise
                    log.warning("directory: database connection lost (%s); reconnecting", exc)
                    with contextlib.suppress(Exception):
                        await c.pg.close(timeout=1)
            conn = c.pg
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(Exception):
                    await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    async def _load(self, force: bool) -> Snapshot | None:
        async with self._transaction(_READ) as conn:
            version = await conn.fetchval("SELECT version FROM directory_version WHERE id = 1")
            if not force and version == self._data_version:
                return None
            snap = await run_async(dr.load_snapshot(self.postmaster), _executor(conn))
        self._data_version = version
        return snap

    async def _run_write(self, rule: Rule[T]) -> T:
        async with self._transaction("BEGIN") as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _WRITE_LOCK)
            result = await run_async(rule, _executor(conn))
            version = await conn.fetchval(
                "UPDATE directory_version SET version = version + 1 WHERE id = 1 RETURNING version"
            )
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(version))
        return result

    async def _run_read(self, rule: Rule[T]) -> T:
        async with self._transaction(_READ) as conn:
            return await run_async(rule, _executor(conn))


def _redact(dsn: str) -> str:
    return re.sub(r"://([^:@/]+):[^@/]*@", r"://\1:***@", dsn)


# --- statements ------------------------------------------------------------------------------------

HANDLERS: Handlers[Callable[[Any, Any], Awaitable[Any]]] = Handlers()
on = HANDLERS.on


def _executor(conn: Any) -> Callable[[Any], Awaitable[Any]]:
    return lambda s: HANDLERS[type(s)](conn, s)


_RULE_COLUMNS = dr.RULE_COLUMNS
_DUMP = dr.DUMP_COLUMNS


@on(dr.AllDomains)
async def _all_domains(c: Any, s: dr.AllDomains) -> list[Any]:
    return await c.fetch("SELECT name, alias_of FROM domains ORDER BY name")


@on(dr.AllUsers)
async def _all_users(c: Any, s: dr.AllUsers) -> list[Any]:
    return await c.fetch("SELECT address, password, disabled, created FROM users")


@on(dr.AllAliases)
async def _all_aliases(c: Any, s: dr.AllAliases) -> list[Any]:
    return await c.fetch("SELECT source, target FROM aliases ORDER BY source, position")


@on(dr.AllRules)
async def _all_rules(c: Any, s: dr.AllRules) -> list[Any]:
    return await c.fetch(f"SELECT {_RULE_COLUMNS} FROM access ORDER BY position")


@on(dr.PrimaryDomain)
async def _primary_domain(c: Any, s: dr.PrimaryDomain) -> str | None:
    return await c.fetchval("SELECT coalesce(alias_of, name) FROM domains WHERE name = $1", s.name)


@on(dr.InsertDomain)
async def _insert_domain(c: Any, s: dr.InsertDomain) -> None:
    await c.execute("INSERT INTO domains (name, alias_of, created) VALUES ($1, $2, $3)", s.name, s.alias_of, s.created)


@on(dr.DomainUse)
async def _domain_use(c: Any, s: dr.DomainUse) -> tuple[int, int, list[str]]:
    users = await c.fetchval("SELECT count(*) FROM users WHERE domain = $1", s.name)
    sources = await c.fetchval(
        "SELECT count(DISTINCT source) FROM aliases WHERE source LIKE $1 ESCAPE '\\'", dr.like_suffix(s.name)
    )
    aliases = [r[0] for r in await c.fetch("SELECT name FROM domains WHERE alias_of = $1 ORDER BY name", s.name)]
    return users, sources, aliases


@on(dr.DeleteDomain)
async def _delete_domain(c: Any, s: dr.DeleteDomain) -> None:
    await c.execute("DELETE FROM domains WHERE name = $1", s.name)


@on(dr.HasUser)
async def _has_user(c: Any, s: dr.HasUser) -> bool:
    return await c.fetchval("SELECT 1 FROM users WHERE address = $1", s.address) is not None


@on(dr.InsertUser)
async def _insert_user(c: Any, s: dr.InsertUser) -> None:
    await c.execute(
        "INSERT INTO users (address, local, domain, password, disabled, created, changed)"
        " VALUES ($1, $2, $3, $4, $5, $6, $6)",
        s.address, s.local, s.domain, s.password, int(s.disabled), s.created,
    )


@on(dr.SetPassword)
async def _set_password(c: Any, s: dr.SetPassword) -> None:
    await c.execute(
        "UPDATE users SET password = $2, changed = $3 WHERE address = $1 AND ($4::text IS NULL OR password = $4)",
        s.address, s.password, s.changed, s.if_password,
    )


@on(dr.SetDisabled)
async def _set_disabled(c: Any, s: dr.SetDisabled) -> None:
    await c.execute(
        "UPDATE users SET disabled = $2, changed = $3 WHERE address = $1", s.address, int(s.disabled), s.changed
    )


@on(dr.DeleteUser)
async def _delete_user(c: Any, s: dr.DeleteUser) -> None:
    await c.execute("DELETE FROM users WHERE address = $1", s.address)


@on(dr.UserList)
async def _user_list(c: Any, s: dr.UserList) -> list[Any]:
    return await c.fetch(
        "SELECT address, disabled, created FROM users WHERE $1::text IS NULL OR domain = $1 ORDER BY domain, local",
        s.domain,
    )


@on(dr.AliasTargets)
async def _alias_targets(c: Any, s: dr.AliasTargets) -> list[str]:
    return [r[0] for r in await c.fetch("SELECT target FROM aliases WHERE source = $1 ORDER BY position", s.source)]


@on(dr.AddAliasTarget)
async def _add_alias_target(c: Any, s: dr.AddAliasTarget) -> None:
    await c.execute(
        "INSERT INTO aliases (source, target, position) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        s.source, s.target, s.position,
    )


@on(dr.LastAliasPosition)
async def _last_alias_position(c: Any, s: dr.LastAliasPosition) -> int:
    return await c.fetchval("SELECT coalesce(max(position), 0) FROM aliases WHERE source = $1", s.source)


@on(dr.DeleteAlias)
async def _delete_alias(c: Any, s: dr.DeleteAlias) -> None:
    await c.execute(
        "DELETE FROM aliases WHERE source = $1 AND ($2::text IS NULL OR target = $2)", s.source, s.target
    )


@on(dr.DeleteAllRules)
async def _delete_all_rules(c: Any, s: dr.DeleteAllRules) -> None:
    await c.execute("DELETE FROM access")


@on(dr.LastRulePosition)
async def _last_rule_position(c: Any, s: dr.LastRulePosition) -> int:
    return await c.fetchval("SELECT coalesce(max(position), 0) FROM access")


@on(dr.RuleByKey)
async def _rule_by_key(c: Any, s: dr.RuleByKey) -> Any:
    return await c.fetchrow(f"SELECT {_RULE_COLUMNS} FROM access WHERE tag = $1 AND key = $2", s.tag, s.key)


@on(dr.UpdateRule)
async def _update_rule(c: Any, s: dr.UpdateRule) -> None:
    r = s.rule
    await c.execute(
        "UPDATE access SET pattern = $3, action = $4, reply_code = $5, reply_enhanced = $6, reply_text = $7"
        " WHERE tag = $1 AND key = $2",
        r.tag.value, r.key, r.pattern, r.action.value, r.reply_code, r.reply_enhanced, r.reply_text,
    )


@on(dr.InsertRule)
async def _insert_rule(c: Any, s: dr.InsertRule) -> None:
    await c.execute(
        f"INSERT INTO access ({_RULE_COLUMNS}, position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        *dr.rule_row(s.rule), s.position,
    )


@on(dr.DeleteRule)
async def _delete_rule(c: Any, s: dr.DeleteRule) -> None:
    await c.execute("DELETE FROM access WHERE tag = $1 AND key = $2", s.tag, s.key)


@on(dr.DumpTable)
async def _dump_table(c: Any, s: dr.DumpTable) -> list[Any]:
    columns, order = _DUMP[s.table]
    return await c.fetch(f"SELECT {columns} FROM {s.table} ORDER BY {order}")


@on(dr.LoadRows)
async def _load_rows(c: Any, s: dr.LoadRows) -> None:
    columns, _order = _DUMP[s.table]
    marks = ", ".join(f"${i}" for i in range(1, len(columns.split(",")) + 1))
    if s.rows:
        await c.executemany(
            f"INSERT INTO {s.table} ({columns}) VALUES ({marks})", [_typed(s.table, r) for r in s.rows]
        )


def _typed(table: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
    # SQLite may hand back an integer for a REAL column holding a whole number; PostgreSQL's
    # double precision parameters want floats.
    if table == "domains":
        return (row[0], row[1], float(row[2]))
    if table == "users":
        return (*row[:4], int(row[4]), float(row[5]), float(row[6]))
    return row


@on(dr.IsEmpty)
async def _is_empty(c: Any, s: dr.IsEmpty) -> bool:
    return not await c.fetchval("SELECT EXISTS (SELECT 1 FROM domains) OR EXISTS (SELECT 1 FROM access)")
