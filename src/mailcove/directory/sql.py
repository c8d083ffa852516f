"""The default directory: a SQLite file `<data_dir>/directory.db` in WAL mode.

The directory itself (snapshot, lookups, admin verbs) is database.py's and its rules are
rules.py's; this module is SQLite's part: the schema, each statement's SQL, and the driver.

- **Driver.** Every SQLite call runs on one dedicated thread, never on the event loop. A write
  rule runs inside `BEGIN IMMEDIATE`, so two admin commands racing (also from two processes)
  take turns and a check-then-insert cannot race. The snapshot is reloaded when
  `PRAGMA data_version` says another connection (the admin CLI in another process) committed;
  this connection's own commits do not change it, which database.py's dirty flag covers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mailcove.directory import rules as dr
from mailcove.directory.database import DatabaseDirectory
from mailcove.directory.rules import PutResult, parse_domain, parse_user_address
from mailcove.directory.snapshot import Snapshot
from mailcove.store.sansio import Handlers, Rule, run

if TYPE_CHECKING:
    from mailcove.config.settings import Settings

log = logging.getLogger("mailcove.directory")
T = TypeVar("T")
SCHEMA_VERSION = 1
DB_NAME = "directory.db"

__all__ = ["DB_NAME", "PutResult", "SqliteDirectory", "parse_domain", "parse_user_address"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS domains (
    name     TEXT PRIMARY KEY,
    alias_of TEXT REFERENCES domains(name),   -- NULL for a primary domain
    created  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    address  TEXT PRIMARY KEY,                -- canonical key: lower-case local @ primary domain
    local    TEXT NOT NULL,
    domain   TEXT NOT NULL REFERENCES domains(name),
    password TEXT NOT NULL,                   -- argon2id encoded hash, never the password
    disabled INTEGER NOT NULL DEFAULT 0,
    created  REAL NOT NULL,
    changed  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS users_local ON users(local);
CREATE TABLE IF NOT EXISTS aliases (
    source   TEXT NOT NULL,                   -- "a@domain", or "@domain" for a catch-all
    target   TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (source, target)
);
CREATE TABLE IF NOT EXISTS access (
    tag            TEXT NOT NULL,             -- Connect, From, To, or '' (untagged)
    key            TEXT NOT NULL,             -- normalised pattern (see access.normalize_pattern)
    pattern        TEXT NOT NULL,             -- as the administrator wrote it
    action         TEXT NOT NULL,
    reply_code     INTEGER,
    reply_enhanced TEXT,
    reply_text     TEXT,
    position       INTEGER NOT NULL,
    PRIMARY KEY (tag, key)
);
"""


class SqliteDirectory(DatabaseDirectory):
    def __init__(self, path: str | os.PathLike[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = Path(path)
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mailcove-directory-db")
        self._conn: sqlite3.Connection | None = None  # used only on the _db thread
        self._data_version: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> SqliteDirectory:
        return cls(Path(settings.data_dir) / DB_NAME, **cls._options(settings, kwargs))

    async def backup(self, dest: Path) -> list[str]:
        """directory.db as of one commit (SQLite online backup), into the directory `dest`;
        works with or without start() and beside a running server."""
        from mailcove.store.sqlite.backup import copy_database

        Path(dest).mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.path.exists():
            return []
        await asyncio.to_thread(copy_database, self.path, Path(dest) / self.path.name)
        return [self.path.name]

    # --- the driver: one thread, one connection ------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    async def _connect(self) -> None:
        await self._run(self._open)

    async def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(RuntimeError):
                await self._run(self._close_conn)
        self._db.shutdown(wait=True)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        existed = self.path.exists()
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=10.0, check_same_thread=True)
        if not existed:
            # Password hashes are secrets too: offline cracking starts with reading this file.
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            conn.close()
            raise RuntimeError(f"{self.path} has schema version {version}; this mailcove knows {SCHEMA_VERSION}")
        if version < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _statements(_SCHEMA):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        self._conn = conn

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _load(self, force: bool) -> Snapshot | None:
        return await self._run(self._load_if_changed, force)

    def _load_if_changed(self, force: bool) -> Snapshot | None:
        conn = self._conn
        assert conn is not None, "directory not started"
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if not force and version == self._data_version:
            return None
        snap = self._exec_read(dr.load_snapshot(self.postmaster))
        self._data_version = version
        return snap

    def _exec_write(self, rule: Rule[T]) -> T:
        conn = self._conn
        assert conn is not None, "directory not started"
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = run(rule, lambda s: HANDLERS[type(s)](conn, s))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _exec_read(self, rule: Rule[T]) -> T:
        conn = self._conn
        assert conn is not None, "directory not started"
        conn.execute("BEGIN")
        try:
            return run(rule, lambda s: HANDLERS[type(s)](conn, s))
        finally:
            conn.execute("COMMIT")

    async def _run_write(self, rule: Rule[T]) -> T:
        return await self._run(self._exec_write, rule)

    async def _run_read(self, rule: Rule[T]) -> T:
        return await self._run(self._exec_read, rule)


# --- statements ------------------------------------------------------------------------------------

Conn = sqlite3.Connection
HANDLERS: Handlers[Callable[[Conn, Any], Any]] = Handlers()
on = HANDLERS.on

_RULE_COLUMNS = dr.RULE_COLUMNS
_DUMP = dr.DUMP_COLUMNS


@on(dr.AllDomains)
def _all_domains(c: Conn, s: dr.AllDomains) -> list[Any]:
    return c.execute("SELECT name, alias_of FROM domains ORDER BY name").fetchall()


@on(dr.AllUsers)
def _all_users(c: Conn, s: dr.AllUsers) -> list[Any]:
    return c.execute("SELECT address, password, disabled, created FROM users").fetchall()


@on(dr.AllAliases)
def _all_aliases(c: Conn, s: dr.AllAliases) -> list[Any]:
    return c.execute("SELECT source, target FROM aliases ORDER BY source, position").fetchall()


@on(dr.AllRules)
def _all_rules(c: Conn, s: dr.AllRules) -> list[Any]:
    return c.execute(f"SELECT {_RULE_COLUMNS} FROM access ORDER BY position").fetchall()


@on(dr.PrimaryDomain)
def _primary_domain(c: Conn, s: dr.PrimaryDomain) -> str | None:
    row = c.execute("SELECT coalesce(alias_of, name) FROM domains WHERE name=?", (s.name,)).fetchone()
    return row[0] if row else None


@on(dr.InsertDomain)
def _insert_domain(c: Conn, s: dr.InsertDomain) -> None:
    c.execute("INSERT INTO domains(name, alias_of, created) VALUES (?,?,?)", (s.name, s.alias_of, s.created))


@on(dr.DomainUse)
def _domain_use(c: Conn, s: dr.DomainUse) -> tuple[int, int, list[str]]:
    users = c.execute("SELECT count(*) FROM users WHERE domain=?", (s.name,)).fetchone()[0]
    sources = c.execute(
        "SELECT count(DISTINCT source) FROM aliases WHERE source LIKE ? ESCAPE '\\'", (dr.like_suffix(s.name),)
    ).fetchone()[0]
    aliases = [r[0] for r in c.execute("SELECT name FROM domains WHERE alias_of=? ORDER BY name", (s.name,))]
    return users, sources, aliases


@on(dr.DeleteDomain)
def _delete_domain(c: Conn, s: dr.DeleteDomain) -> None:
    c.execute("DELETE FROM domains WHERE name=?", (s.name,))


@on(dr.HasUser)
def _has_user(c: Conn, s: dr.HasUser) -> bool:
    return c.execute("SELECT 1 FROM users WHERE address=?", (s.address,)).fetchone() is not None


@on(dr.InsertUser)
def _insert_user(c: Conn, s: dr.InsertUser) -> None:
    c.execute(
        "INSERT INTO users(address, local, domain, password, disabled, created, changed) VALUES (?,?,?,?,?,?,?)",
        (s.address, s.local, s.domain, s.password, int(s.disabled), s.created, s.created),
    )


@on(dr.SetPassword)
def _set_password(c: Conn, s: dr.SetPassword) -> None:
    if s.if_password is None:
        c.execute("UPDATE users SET password=?, changed=? WHERE address=?", (s.password, s.changed, s.address))
    else:
        c.execute(
            "UPDATE users SET password=?, changed=? WHERE address=? AND password=?",
            (s.password, s.changed, s.address, s.if_password),
        )


@on(dr.SetDisabled)
def _set_disabled(c: Conn, s: dr.SetDisabled) -> None:
    c.execute("UPDATE users SET disabled=?, changed=? WHERE address=?", (int(s.disabled), s.changed, s.address))


@on(dr.DeleteUser)
def _delete_user(c: Conn, s: dr.DeleteUser) -> None:
    c.execute("DELETE FROM users WHERE address=?", (s.address,))


@on(dr.UserList)
def _user_list(c: Conn, s: dr.UserList) -> list[Any]:
    if s.domain is None:
        return c.execute("SELECT address, disabled, created FROM users ORDER BY domain, local").fetchall()
    return c.execute(
        "SELECT address, disabled, created FROM users WHERE domain=? ORDER BY domain, local", (s.domain,)
    ).fetchall()


@on(dr.AliasTargets)
def _alias_targets(c: Conn, s: dr.AliasTargets) -> list[str]:
    return [r[0] for r in c.execute("SELECT target FROM aliases WHERE source=? ORDER BY position", (s.source,))]


@on(dr.AddAliasTarget)
def _add_alias_target(c: Conn, s: dr.AddAliasTarget) -> None:
    c.execute(
        "INSERT OR IGNORE INTO aliases(source, target, position) VALUES (?,?,?)", (s.source, s.target, s.position)
    )


@on(dr.LastAliasPosition)
def _last_alias_position(c: Conn, s: dr.LastAliasPosition) -> int:
    return c.execute("SELECT coalesce(max(position), 0) FROM aliases WHERE source=?", (s.source,)).fetchone()[0]


@on(dr.DeleteAlias)
def _delete_alias(c: Conn, s: dr.DeleteAlias) -> None:
    if s.target is None:
        c.execute("DELETE FROM aliases WHERE source=?", (s.source,))
    else:
        c.execute("DELETE FROM aliases WHERE source=? AND target=?", (s.source, s.target))


@on(dr.DeleteAllRules)
def _delete_all_rules(c: Conn, s: dr.DeleteAllRules) -> None:
    c.execute("DELETE FROM access")


@on(dr.LastRulePosition)
def _last_rule_position(c: Conn, s: dr.LastRulePosition) -> int:
    return c.execute("SELECT coalesce(max(position), 0) FROM access").fetchone()[0]


@on(dr.RuleByKey)
def _rule_by_key(c: Conn, s: dr.RuleByKey) -> Any:
    return c.execute(f"SELECT {_RULE_COLUMNS} FROM access WHERE tag=? AND key=?", (s.tag, s.key)).fetchone()


@on(dr.UpdateRule)
def _update_rule(c: Conn, s: dr.UpdateRule) -> None:
    r = s.rule
    c.execute(
        "UPDATE access SET pattern=?, action=?, reply_code=?, reply_enhanced=?, reply_text=? WHERE tag=? AND key=?",
        (r.pattern, r.action.value, r.reply_code, r.reply_enhanced, r.reply_text, r.tag.value, r.key),
    )


@on(dr.InsertRule)
def _insert_rule(c: Conn, s: dr.InsertRule) -> None:
    c.execute(
        f"INSERT INTO access({_RULE_COLUMNS}, position) VALUES (?,?,?,?,?,?,?,?)", (*dr.rule_row(s.rule), s.position)
    )


@on(dr.DeleteRule)
def _delete_rule(c: Conn, s: dr.DeleteRule) -> None:
    c.execute("DELETE FROM access WHERE tag=? AND key=?", (s.tag, s.key))


@on(dr.DumpTable)
def _dump_table(c: Conn, s: dr.DumpTable) -> list[Any]:
    columns, order = _DUMP[s.table]
    return c.execute(f"SELECT {columns} FROM {s.table} ORDER BY {order}").fetchall()


@on(dr.LoadRows)
def _load_rows(c: Conn, s: dr.LoadRows) -> None:
    columns, _order = _DUMP[s.table]
    marks = ",".join("?" * len(columns.split(",")))
    c.executemany(f"INSERT INTO {s.table} ({columns}) VALUES ({marks})", s.rows)


@on(dr.IsEmpty)
def _is_empty(c: Conn, s: dr.IsEmpty) -> bool:
    return not (c.execute("SELECT 1 FROM domains").fetchone() or c.execute("SELECT 1 FROM access").fetchone())


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT our BEGIN IMMEDIATE; run the statements one by one instead.
    lines = [ln.split("--", 1)[0] for ln in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
