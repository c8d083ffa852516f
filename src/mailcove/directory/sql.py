"""The default directory: a SQLite file `<data_dir>/directory.db` in WAL mode.

Reads never touch SQLite on the hot path: the whole directory is held as a Snapshot and reloaded
when `PRAGMA data_version` says another connection (the admin CLI in another process, or this
process's own writer) committed. The check runs at most every `reload_interval` seconds and only
when someone asks, so an idle server does no work and a change is visible within about that
interval. All SQLite calls run on one dedicated thread, never on the event loop.

Writes (the admin use cases) validate against the database inside a `BEGIN IMMEDIATE`
transaction, not against the snapshot, so two admin commands racing cannot both succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mailcove.core.address import Address, AddressError, normalize_domain
from mailcove.directory.access import is_localhost, normalize_pattern
from mailcove.directory.api import (
    AccessRule,
    Action,
    AliasInfo,
    DomainInfo,
    Principal,
    Resolution,
    Tag,
    UserInfo,
)
from mailcove.directory.errors import (
    BadAddress,
    DomainExists,
    DomainInUse,
    UnknownAccessRule,
    UnknownAlias,
    UnknownDomain,
    UnknownUser,
    UserExists,
)
from mailcove.directory.hostnames import HostnameResolver
from mailcove.directory.passwords import PasswordVerifier, never_matches
from mailcove.directory.snapshot import Snapshot, UserRecord
from mailcove.directory.throttle import LoginThrottle

if TYPE_CHECKING:
    from mailcove.config.settings import AuthSettings, Settings

log = logging.getLogger("mailcove.directory")
T = TypeVar("T")
SCHEMA_VERSION = 1
DB_NAME = "directory.db"

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


def parse_user_address(text: str) -> Address:
    try:
        addr = Address.parse(text)
    except AddressError as exc:
        raise BadAddress(f"bad address syntax: {exc}") from None
    if addr.domain.startswith("["):
        raise BadAddress(f"an address literal cannot be a local domain: {text!r}")
    return addr


def parse_domain(text: str) -> str:
    try:
        d = normalize_domain(text)
    except AddressError as exc:
        raise BadAddress(str(exc)) from None
    if d.startswith("["):
        raise BadAddress(f"an address literal cannot be a local domain: {text!r}")
    return d


@dataclass(frozen=True, slots=True)
class PutResult:
    created: int
    updated: int


class SqliteDirectory:
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        auth: AuthSettings | None = None,
        postmaster: str | None = None,
        reload_interval: float = 0.5,
        relay_from_localhost: bool = True,
        verifier: PasswordVerifier | None = None,
        throttle: LoginThrottle | None = None,
        hostnames: HostnameResolver | None = None,
    ) -> None:
        from mailcove.config.settings import AuthSettings

        auth = auth or AuthSettings()
        self.path = Path(path)
        self.postmaster = postmaster
        if postmaster is not None:
            parse_user_address(postmaster)  # fail at start-up, not on the first bounce
        self.reload_interval = reload_interval
        # Sendmail relays for 127.0.0.1 and ::1 ("originated locally") before consulting the map.
        self.relay_from_localhost = relay_from_localhost
        # `is None`, not `or`: an empty LoginThrottle is falsy (it has __len__).
        self.verifier = verifier if verifier is not None else PasswordVerifier.from_settings(auth)
        self.throttle = throttle if throttle is not None else LoginThrottle.from_settings(auth)
        self.hostnames = hostnames if hostnames is not None else HostnameResolver()
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mailcove-directory-db")
        self._conn: sqlite3.Connection | None = None  # used only on the _db thread
        self._data_version: int | None = None
        self._snapshot = Snapshot.empty()
        self._next_check = 0.0
        self._dirty = False
        self._refreshing: asyncio.Future[None] | None = None
        self._started = False

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> SqliteDirectory:
        d = settings.directory
        kwargs.setdefault("postmaster", d.postmaster or None)
        kwargs.setdefault("reload_interval", d.reload_interval)
        kwargs.setdefault("relay_from_localhost", d.relay_from_localhost)
        return cls(Path(settings.data_dir) / DB_NAME, auth=settings.auth, **kwargs)

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        await self._run(self._open)
        await self._refresh()
        self._started = True

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(RuntimeError):
                await self._run(self._close_conn)
        self._db.shutdown(wait=True)
        self.verifier.close()
        self.hostnames.close()
        self._started = False

    async def backup(self, dest: Path) -> list[str]:
        """directory.db as of one commit (SQLite online backup), into the directory `dest`;
        works with or without start() and beside a running server."""
        from mailcove.store.sqlite.backup import copy_database

        Path(dest).mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.path.exists():
            return []
        await asyncio.to_thread(copy_database, self.path, Path(dest) / self.path.name)
        return [self.path.name]

    async def __aenter__(self) -> SqliteDirectory:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

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

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    # --- the snapshot ------------------------------------------------------------------------------

    def _load_if_changed(self, force: bool) -> Snapshot | None:
        conn = self._conn
        assert conn is not None, "directory not started"
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if not force and version == self._data_version:
            return None
        conn.execute("BEGIN")
        try:
            domains = {n: a for n, a in conn.execute("SELECT name, alias_of FROM domains")}
            users = {
                a: UserRecord(a, p, bool(d), c)
                for a, p, d, c in conn.execute("SELECT address, password, disabled, created FROM users")
            }
            aliases: dict[str, list[str]] = {}
            for s, t in conn.execute("SELECT source, target FROM aliases ORDER BY source, position"):
                aliases.setdefault(s, []).append(t)
            rules = [_row_rule(r) for r in conn.execute(_RULE_SELECT)]
        finally:
            conn.execute("COMMIT")
        self._data_version = version
        return Snapshot(
            domains, users, {k: tuple(v) for k, v in aliases.items()}, rules, postmaster=self.postmaster
        )

    async def _refresh(self, force: bool = True) -> None:
        snap = await self._run(self._load_if_changed, force)
        if snap is not None:
            self._snapshot = snap
        self._next_check = time.monotonic() + self.reload_interval

    async def snapshot(self) -> Snapshot:
        """The current snapshot, reloaded first if the database may have changed."""
        if not self._started:
            await self.start()
        if time.monotonic() >= self._next_check:
            # One refresh at a time; concurrent callers wait for it rather than queue their own.
            if self._refreshing is None:
                # data_version ignores this connection's own commits, hence the _dirty flag.
                force, self._dirty = self._dirty, False
                self._refreshing = asyncio.ensure_future(self._refresh(force=force))
                fut = self._refreshing
                try:
                    await fut
                finally:
                    self._refreshing = None
            else:
                await asyncio.shield(self._refreshing)
        return self._snapshot

    def _changed(self) -> None:
        # Our own write: reload on the next call instead of waiting out the interval.
        self._dirty = True
        self._next_check = 0.0

    # --- the read API (directory.api.Directory) -----------------------------------------------------

    async def authenticate(self, username: str, password: str, *, client_ip: str | None = None) -> Principal | None:
        attempt = None
        if client_ip is not None:
            # Reserved before the check, in one step with it: parallel logins cannot all get past
            # the limit before the first failure is counted (issue 13, finding 9).
            attempt = self.throttle.begin(client_ip, username)
            if not attempt.allowed:
                log.info("login refused: client %s is throttled", client_ip)
                return None
        try:
            if attempt is not None and attempt.wait > 0:
                # This account has failed often lately, from anywhere: slow every login of it down
                # (known or unknown name alike), but never refuse it.
                await asyncio.sleep(attempt.wait)
            principal = await self._check_login(username, password, client_ip)
        except BaseException:
            if attempt is not None:
                self.throttle.release(attempt)  # never checked: not a failure
            raise
        if attempt is None:
            return principal
        if principal is not None:
            self.throttle.release(attempt)
            return principal
        verdict = self.throttle.failed(attempt)
        if verdict.delay > 0:
            await asyncio.sleep(verdict.delay)
        return None

    async def _check_login(self, username: str, password: str, client_ip: str | None) -> Principal | None:
        """The password check itself; the throttle is authenticate's business."""
        snap = await self.snapshot()
        if never_matches(password):
            # Before the lookup: the same answer in the same time whether the name exists or not.
            log.info("login of %r refused: empty or too long password", username[:64])
            return None
        record = snap.find_login(username)
        if record is None or record.disabled:
            await self.verifier.verify_dummy(password)
            return None
        result = await self.verifier.verify(record.address, password, record.password)
        if not result.ok:
            return None
        if result.needs_rehash:
            await self._rehash(record, password)
        return Principal(record.address, record.address, username)

    async def _rehash(self, record: UserRecord, password: str) -> None:
        """The [auth] parameters changed since this hash was made: store a new one. A failure
        here must not fail the login that triggered it."""
        try:
            new_hash = await self.verifier.hash(password)
            await self._run(self._w_rehash, record.address, record.password, new_hash)
            self._changed()
        except Exception:  # the login succeeded; a rehash is an optimisation
            log.warning("could not rehash the password of %s", record.address, exc_info=True)

    def _w_rehash(self, address: str, old: str, new: str) -> None:
        # Compare-and-set: if an administrator changed the password meanwhile, keep theirs.
        self._exec_write(
            lambda c: c.execute(
                "UPDATE users SET password=?, changed=? WHERE address=? AND password=?",
                (new, time.time(), address, old),
            )
        )

    async def resolve(self, address: str) -> Resolution:
        return (await self.snapshot()).resolve(address)

    async def is_local_domain(self, domain: str) -> bool:
        return (await self.snapshot()).is_local_domain(domain)

    async def canonical_domain(self, domain: str) -> str | None:
        return (await self.snapshot()).canonical_domain(domain)

    async def client_name(self, ip: str) -> str | None:
        """The client's forward-confirmed reverse name (system resolver, cached)."""
        return await self.hostnames.client_name(ip)

    async def match_connect(self, ip: str, hostname: str | None = None) -> AccessRule | None:
        snap = await self.snapshot()
        table = snap.access
        name: str | None = None
        if any(r.tag in (Tag.CONNECT, Tag.ANY) and "/" not in r.key for r in table.rules):
            # Only pay for DNS when a host-name rule exists. A caller-supplied name is still
            # checked forward, so an unverified HELO name cannot buy a RELAY.
            if hostname:
                name = hostname if await self.hostnames.confirms(hostname, ip) else None
            else:
                name = await self.hostnames.client_name(ip)
        return table.match_connect(ip, name)

    async def match_from(self, address: str) -> AccessRule | None:
        return (await self.snapshot()).access.match_address(Tag.FROM, address)

    async def match_to(self, address: str) -> AccessRule | None:
        return (await self.snapshot()).access.match_address(Tag.TO, address)

    async def check_connect(self, ip: str, hostname: str | None = None) -> Action | None:
        rule = await self.match_connect(ip, hostname)
        return rule.action if rule else None

    async def check_from(self, address: str) -> Action | None:
        rule = await self.match_from(address)
        return rule.action if rule else None

    async def check_to(self, address: str) -> Action | None:
        rule = await self.match_to(address)
        return rule.action if rule else None

    async def relay_allowed(
        self, ip: str, recipient: str, *, sender: str | None = None, hostname: str | None = None
    ) -> bool:
        snap = await self.snapshot()
        dom = recipient.strip().strip("<>").rpartition("@")[2]
        if dom and snap.is_local_domain(dom):
            return True  # not relaying at all
        to_rule = snap.access.match_address(Tag.TO, recipient)
        if to_rule is not None and to_rule.action is Action.RELAY:
            return True
        if sender is not None:
            # Sendmail's FEATURE(relay_mail_from): forgeable, so only when the admin asked for it.
            from_rule = snap.access.match_address(Tag.FROM, sender)
            if from_rule is not None and from_rule.tag is Tag.FROM and from_rule.action is Action.RELAY:
                return True
        conn_rule = await self.match_connect(ip, hostname)
        if conn_rule is not None:
            return conn_rule.action is Action.RELAY
        return self.relay_from_localhost and is_localhost(ip)

    # --- writes (the admin use cases call these) ------------------------------------------------------

    def _exec_write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        assert conn is not None, "directory not started"
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if not self._started:
            await self.start()
        result = await self._run(self._exec_write, fn)
        self._changed()
        return result

    def _exec_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        assert conn is not None, "directory not started"
        conn.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            conn.execute("COMMIT")

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A consistent read of the database itself (admin listings), not of the snapshot."""
        if not self._started:
            await self.start()
        return await self._run(self._exec_read, fn)

    # domains

    async def add_domain(self, name: str, alias_of: str | None = None) -> DomainInfo:
        d = parse_domain(name)
        target = parse_domain(alias_of) if alias_of else None

        def tx(c: sqlite3.Connection) -> DomainInfo:
            if c.execute("SELECT 1 FROM domains WHERE name=?", (d,)).fetchone():
                raise DomainExists(f"domain already exists: {d}")
            canon = target
            if target is not None:
                row = c.execute("SELECT alias_of FROM domains WHERE name=?", (target,)).fetchone()
                if row is None:
                    raise UnknownDomain(f"unknown domain: {target} (add it first)")
                canon = row[0] or target  # an alias of an alias points at the primary: no chains
                if canon == d:
                    raise DomainExists(f"{d} cannot be an alias of itself")
            c.execute("INSERT INTO domains(name, alias_of, created) VALUES (?,?,?)", (d, canon, time.time()))
            return DomainInfo(d, canon)

        return await self._write(tx)

    async def delete_domain(self, name: str) -> None:
        d = parse_domain(name)

        def tx(c: sqlite3.Connection) -> None:
            if not c.execute("SELECT 1 FROM domains WHERE name=?", (d,)).fetchone():
                raise UnknownDomain(f"unknown domain: {d}")
            users = c.execute("SELECT count(*) FROM users WHERE domain=?", (d,)).fetchone()[0]
            aliases = [r[0] for r in c.execute("SELECT name FROM domains WHERE alias_of=?", (d,))]
            sources = c.execute(
                "SELECT count(DISTINCT source) FROM aliases WHERE source LIKE ? ESCAPE '\\'", ("%@" + _like(d),)
            ).fetchone()[0]
            problems = []
            if users:
                problems.append(f"{users} user(s)")
            if sources:
                problems.append(f"{sources} alias(es)")
            if aliases:
                problems.append("alias domain(s) " + ", ".join(aliases))
            if problems:
                raise DomainInUse(f"domain {d} still has {' and '.join(problems)}; delete them first")
            c.execute("DELETE FROM domains WHERE name=?", (d,))

        await self._write(tx)

    async def list_domains(self) -> list[DomainInfo]:
        def q(c: sqlite3.Connection) -> list[DomainInfo]:
            return [DomainInfo(n, a) for n, a in c.execute("SELECT name, alias_of FROM domains ORDER BY name")]

        return await self._read(q)

    # users

    @staticmethod
    def _canonical_user(c: sqlite3.Connection, address: str) -> tuple[str, str, str]:
        addr = parse_user_address(address)
        row = c.execute("SELECT alias_of FROM domains WHERE name=?", (addr.domain,)).fetchone()
        if row is None:
            raise UnknownDomain(f"unknown domain: {addr.domain} (add it with `mailcove domain add {addr.domain}`)")
        dom = row[0] or addr.domain
        local = addr.local.lower()
        return f"{local}@{dom}", local, dom

    async def add_user(self, address: str, password: str, *, disabled: bool = False) -> UserInfo:
        # Check what can be checked before spending an argon2 hash on it.
        await self.check_new_user(address)
        hashed = await self.verifier.hash(password)

        def tx(c: sqlite3.Connection) -> UserInfo:
            key, local, dom = self._check_new_user(c, address)
            now = time.time()
            c.execute(
                "INSERT INTO users(address, local, domain, password, disabled, created, changed)"
                " VALUES (?,?,?,?,?,?,?)",
                (key, local, dom, hashed, int(disabled), now, now),
            )
            return UserInfo(key, disabled, now)

        return await self._write(tx)

    async def check_new_user(self, address: str) -> str:
        """Raise as add_user would (bad syntax, unknown domain, exists) without hashing anything,
        so a front end can refuse before asking for a password twice."""
        addr = parse_user_address(address)
        if "+" in addr.local:
            raise BadAddress(f"'+' separates an address extension (a+tag@) and cannot be in a user name: {address}")
        key, _, _ = await self._read(lambda c: self._check_new_user(c, address))
        return key

    def _check_new_user(self, c: sqlite3.Connection, address: str) -> tuple[str, str, str]:
        key, local, dom = self._canonical_user(c, address)
        if c.execute("SELECT 1 FROM users WHERE address=?", (key,)).fetchone():
            raise UserExists(f"user already exists: {key}")
        return key, local, dom

    def _existing_user(self, c: sqlite3.Connection, address: str) -> str:
        key, _, _ = self._canonical_user(c, address)
        if not c.execute("SELECT 1 FROM users WHERE address=?", (key,)).fetchone():
            raise UnknownUser(f"unknown user: {key}")
        return key

    async def user_key(self, address: str) -> str:
        """The canonical key of an existing user (a@rocky9-3 -> a@hamap.local); UnknownUser if none."""
        return await self._read(lambda c: self._existing_user(c, address))

    async def set_password(self, address: str, password: str) -> str:
        key = await self.user_key(address)
        hashed = await self.verifier.hash(password)

        def tx(c: sqlite3.Connection) -> str:
            k = self._existing_user(c, address)
            c.execute("UPDATE users SET password=?, changed=? WHERE address=?", (hashed, time.time(), k))
            return k

        result = await self._write(tx)
        assert result == key
        return result

    async def set_disabled(self, address: str, disabled: bool) -> str:
        def tx(c: sqlite3.Connection) -> str:
            k = self._existing_user(c, address)
            c.execute("UPDATE users SET disabled=?, changed=? WHERE address=?", (int(disabled), time.time(), k))
            return k

        return await self._write(tx)

    async def delete_user(self, address: str) -> str:
        def tx(c: sqlite3.Connection) -> str:
            k = self._existing_user(c, address)
            c.execute("DELETE FROM users WHERE address=?", (k,))
            return k

        return await self._write(tx)

    async def list_users(self, domain: str | None = None) -> list[UserInfo]:
        def q(c: sqlite3.Connection) -> list[UserInfo]:
            sql = "SELECT address, disabled, created FROM users"
            args: tuple[str, ...] = ()
            if domain:
                d = parse_domain(domain)
                row = c.execute("SELECT alias_of FROM domains WHERE name=?", (d,)).fetchone()
                if row is None:
                    raise UnknownDomain(f"unknown domain: {d}")
                sql += " WHERE domain=?"
                args = (row[0] or d,)
            return [UserInfo(a, bool(x), t) for a, x, t in c.execute(sql + " ORDER BY domain, local", args)]

        return await self._read(q)

    # aliases

    @staticmethod
    def _alias_source(c: sqlite3.Connection, source: str) -> str:
        s = source.strip()
        if s.startswith("@"):
            dom = parse_domain(s[1:])
            row = c.execute("SELECT alias_of FROM domains WHERE name=?", (dom,)).fetchone()
            if row is None:
                raise UnknownDomain(f"unknown domain: {dom}")
            return "@" + (row[0] or dom)
        key, _, _ = SqliteDirectory._canonical_user(c, s)
        return key

    async def add_alias(self, source: str, targets: Sequence[str]) -> AliasInfo:
        if not targets:
            raise BadAddress("an alias needs at least one target")
        clean: list[str] = []
        for t in targets:
            addr = parse_user_address(t)
            text = f"{addr.local}@{addr.domain}"
            if text.lower() not in (x.lower() for x in clean):
                clean.append(text)

        def tx(c: sqlite3.Connection) -> AliasInfo:
            src = self._alias_source(c, source)
            pos = c.execute("SELECT coalesce(max(position), 0) FROM aliases WHERE source=?", (src,)).fetchone()[0]
            for t in clean:
                pos += 1
                c.execute("INSERT OR IGNORE INTO aliases(source, target, position) VALUES (?,?,?)", (src, t, pos))
            return AliasInfo(src, _alias_targets(c, src))

        return await self._write(tx)

    async def delete_alias(self, source: str, target: str | None = None) -> AliasInfo:
        """Remove one target, or the whole alias. Returns what is left."""

        def tx(c: sqlite3.Connection) -> AliasInfo:
            src = self._alias_source(c, source)
            existing = _alias_targets(c, src)
            if not existing:
                raise UnknownAlias(f"unknown alias: {src}")
            if target is None:
                c.execute("DELETE FROM aliases WHERE source=?", (src,))
                return AliasInfo(src, ())
            match = [t for t in existing if t.lower() == target.strip().lower()]
            if not match:
                raise UnknownAlias(f"alias {src} has no target {target.strip()}")
            c.execute("DELETE FROM aliases WHERE source=? AND target=?", (src, match[0]))
            return AliasInfo(src, _alias_targets(c, src))

        return await self._write(tx)

    async def list_aliases(self) -> list[AliasInfo]:
        def q(c: sqlite3.Connection) -> list[AliasInfo]:
            out: dict[str, list[str]] = {}
            for s, t in c.execute("SELECT source, target FROM aliases ORDER BY source, position"):
                out.setdefault(s, []).append(t)
            return [AliasInfo(s, tuple(ts)) for s, ts in out.items()]

        return await self._read(q)

    # access rules

    async def put_access_rules(self, rules: Iterable[AccessRule], *, replace: bool = False) -> PutResult:
        """Add or update rules (one transaction). `replace` first deletes every existing rule, as
        rebuilding access.db from the text file would."""
        items = list(rules)

        def tx(c: sqlite3.Connection) -> PutResult:
            if replace:
                c.execute("DELETE FROM access")
            pos = c.execute("SELECT coalesce(max(position), 0) FROM access").fetchone()[0]
            created = updated = 0
            for r in items:
                exists = c.execute("SELECT 1 FROM access WHERE tag=? AND key=?", (r.tag.value, r.key)).fetchone()
                if exists:
                    updated += 1
                    c.execute(
                        "UPDATE access SET pattern=?, action=?, reply_code=?, reply_enhanced=?, reply_text=?"
                        " WHERE tag=? AND key=?",
                        (r.pattern, r.action.value, r.reply_code, r.reply_enhanced, r.reply_text, r.tag.value, r.key),
                    )
                else:
                    created += 1
                    pos += 1
                    c.execute(
                        "INSERT INTO access(tag, key, pattern, action, reply_code, reply_enhanced, reply_text,"
                        " position) VALUES (?,?,?,?,?,?,?,?)",
                        (*_rule_row(r), pos),
                    )
            return PutResult(created, updated)

        return await self._write(tx)

    async def delete_access_rule(self, tag: Tag, pattern: str) -> AccessRule:
        key = normalize_pattern(tag, pattern)

        def tx(c: sqlite3.Connection) -> AccessRule:
            row = c.execute(_RULE_SELECT_BY_KEY, (tag.value, key)).fetchone()
            if row is None:
                label = f"{tag.value}:{pattern.strip()}" if tag is not Tag.ANY else pattern.strip()
                raise UnknownAccessRule(f"no access rule for {label}")
            c.execute("DELETE FROM access WHERE tag=? AND key=?", (tag.value, key))
            return _row_rule(row)

        return await self._write(tx)

    async def list_access_rules(self) -> list[AccessRule]:
        return await self._read(lambda c: [_row_rule(r) for r in c.execute(_RULE_SELECT)])


_RULE_SELECT = (
    "SELECT tag, key, pattern, action, reply_code, reply_enhanced, reply_text FROM access ORDER BY position"
)
_RULE_SELECT_BY_KEY = (
    "SELECT tag, key, pattern, action, reply_code, reply_enhanced, reply_text FROM access WHERE tag=? AND key=?"
)


def _rule_row(r: AccessRule) -> tuple[Any, ...]:
    return (r.tag.value, r.key, r.pattern, r.action.value, r.reply_code, r.reply_enhanced, r.reply_text)


def _row_rule(row: Sequence[Any]) -> AccessRule:
    tag, key, pattern, action, code, enh, text = row
    return AccessRule(Tag(tag), key, pattern, Action(action), code, enh, text)


def _alias_targets(c: sqlite3.Connection, src: str) -> tuple[str, ...]:
    return tuple(r[0] for r in c.execute("SELECT target FROM aliases WHERE source=? ORDER BY position", (src,)))


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT our BEGIN IMMEDIATE; run the statements one by one instead.
    lines = [ln.split("--", 1)[0] for ln in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]

