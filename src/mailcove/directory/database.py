"""A directory kept in a database: everything SQLite (sql.py) and PostgreSQL (postgres.py) share.

Reads never touch the database on the hot path: the whole directory is held as a Snapshot and
reloaded when the backend says the database changed. The check runs at most every
`reload_interval` seconds and only when someone asks, so an idle server does no work. Admin
writes are the rules in rules.py, run by the backend's driver in one transaction each.

A backend supplies its driver: `_connect`/`_disconnect`, `_load` (a new snapshot if the
database changed), `_run_write`/`_run_read` (run one rule), and `backup`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mailcove.core.clock import SYSTEM_CLOCK, Clock
from mailcove.directory import rules as dr
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
from mailcove.directory.errors import BadAddress
from mailcove.directory.hostnames import HostnameResolver
from mailcove.directory.passwords import PasswordVerifier, never_matches
from mailcove.directory.rules import PutResult
from mailcove.directory.snapshot import Snapshot, UserRecord
from mailcove.directory.throttle import LoginThrottle
from mailcove.store.sansio import Rule

if TYPE_CHECKING:
    from mailcove.config.settings import AuthSettings, Settings

log = logging.getLogger("mailcove.directory")
T = TypeVar("T")

# A login whose client's allowance is held by the client's own checks in flight looks again this
# often, and gives up (refused as throttled) after this long: a password check takes milliseconds.
BUSY_POLL = 0.01
BUSY_WAIT_MAX = 10.0


class DatabaseDirectory:
    def __init__(
        self,
        *,
        auth: AuthSettings | None = None,
        postmaster: str | None = None,
        reload_interval: float = 0.5,
        relay_from_localhost: bool = True,
        verifier: PasswordVerifier | None = None,
        throttle: LoginThrottle | None = None,
        hostnames: HostnameResolver | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        from mailcove.config.settings import AuthSettings

        auth = auth or AuthSettings()
        # Reloads, the throttle's windows and the delays it asks for, the password cache: all on this clock.
        self.clock = clock
        self.postmaster = postmaster
        if postmaster is not None:
            dr.parse_user_address(postmaster, new=True)  # fail at start-up, not on the first bounce
        self.reload_interval = reload_interval
        # Sendmail relays for 127.0.0.1 and ::1 ("originated locally") before consulting the map.
        self.relay_from_localhost = relay_from_localhost
        # `is None`, not `or`: an empty LoginThrottle is falsy (it has __len__).
        self.verifier = verifier if verifier is not None else PasswordVerifier.from_settings(auth, clock=clock)
        self.throttle = throttle if throttle is not None else LoginThrottle.from_settings(auth, clock=clock)
        self.hostnames = hostnames if hostnames is not None else HostnameResolver(clock=clock)
        self._snapshot = Snapshot.empty()
        self._next_check = 0.0
        self._dirty = False
        self._refreshing: asyncio.Future[None] | None = None
        self._started = False

    @staticmethod
    def _options(settings: Settings, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The constructor's keyword arguments from the settings, unless given in `kwargs`."""
        d = settings.directory
        kwargs.setdefault("postmaster", d.postmaster or None)
        kwargs.setdefault("reload_interval", d.reload_interval)
        kwargs.setdefault("relay_from_localhost", d.relay_from_localhost)
        kwargs.setdefault("auth", settings.auth)
        return kwargs

    # --- the driver (a backend's) --------------------------------------------------------------------

    async def _connect(self) -> None:
        raise NotImplementedError

    async def _disconnect(self) -> None:
        raise NotImplementedError

    async def _load(self, force: bool) -> Snapshot | None:
        """A new snapshot if the database changed since the last load (or `force`), else None."""
        raise NotImplementedError

    async def _run_write(self, rule: Rule[T]) -> T:
        """Run `rule` in one write transaction, serialised with every other directory write."""
        raise NotImplementedError

    async def _run_read(self, rule: Rule[T]) -> T:
        """Run `rule` in one consistent read of the database."""
        raise NotImplementedError

    async def backup(self, dest: Path) -> list[str]:
        raise NotImplementedError

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        await self._connect()
        await self._refresh()
        self._started = True

    async def close(self) -> None:
        await self._disconnect()
        self.verifier.close()
        self.hostnames.close()
        self._started = False

    async def __aenter__(self) -> DatabaseDirectory:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- the snapshot ------------------------------------------------------------------------------

    async def _refresh(self, force: bool = True) -> None:
        snap = await self._load(force)
        if snap is not None:
            self._snapshot = snap
        self._next_check = self.clock.monotonic() + self.reload_interval

    async def snapshot(self) -> Snapshot:
        """The current snapshot, reloaded first if the database may have changed."""
        if not self._started:
            await self.start()
        if self.clock.monotonic() >= self._next_check:
            # One refresh at a time; concurrent callers wait for it rather than queue their own.
            if self._refreshing is None:
                # A backend may not see its own commits as changes, hence the _dirty flag.
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
            # the limit before the first failure is counted (issue 13, finding 9). While the
            # client's own logins in flight fill its allowance, this one waits its turn.
            waited = 0.0
            while True:
                attempt = self.throttle.begin(client_ip, username)
                if attempt.allowed or not attempt.busy or waited >= BUSY_WAIT_MAX:
                    break
                await self.clock.sleep(BUSY_POLL)
                waited += BUSY_POLL
            if not attempt.allowed:
                log.info("login refused: client %s is throttled", client_ip)
                return None
        try:
            if attempt is not None and attempt.wait > 0:
                # This account has failed often lately, from anywhere: slow every login of it down
                # (known or unknown name alike), but never refuse it.
                await self.clock.sleep(attempt.wait)
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
            await self.clock.sleep(verdict.delay)
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
            await self._run_write(dr.rehash(record.address, record.password, new_hash, self.clock.time()))
            self._changed()
        except Exception:  # the login succeeded; a rehash is an optimisation
            log.warning("could not rehash the password of %s", record.address, exc_info=True)

    async def resolve(self, address: str) -> Resolution:
        return (await self.snapshot()).resolve(address)

    async def expand_forwards(self, res: Resolution, address: str) -> Resolution:
        return res  # the database's users have no forwarding of their own

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

    async def _write(self, rule: Callable[..., Rule[T]], *args: Any) -> T:
        if not self._started:
            await self.start()
        result = await self._run_write(rule(*args))
        self._changed()
        return result

    async def _read(self, rule: Callable[..., Rule[T]], *args: Any) -> T:
        """A consistent read of the database itself (admin listings), not of the snapshot."""
        if not self._started:
            await self.start()
        return await self._run_read(rule(*args))

    # domains

    async def add_domain(self, name: str, alias_of: str | None = None) -> DomainInfo:
        return await self._write(dr.add_domain, name, alias_of, self.clock.time())

    async def delete_domain(self, name: str) -> None:
        await self._write(dr.delete_domain, name)

    async def list_domains(self) -> list[DomainInfo]:
        return await self._read(dr.list_domains)

    # users

    async def add_user(self, address: str, password: str, *, disabled: bool = False) -> UserInfo:
        # Check what can be checked before spending an argon2 hash on it.
        await self.check_new_user(address)
        hashed = await self.verifier.hash(password)
        return await self._write(dr.add_user, address, hashed, disabled, self.clock.time())

    async def check_new_user(self, address: str) -> str:
        """Raise as add_user would (bad syntax, unknown domain, exists) without hashing anything,
        so a front end can refuse before asking for a password twice."""
        addr = dr.parse_user_address(address, new=True)
        if "+" in addr.local:
            raise BadAddress(f"'+' separates an address extension (a+tag@) and cannot be in a user name: {address}")
        key, _, _ = await self._read(dr.check_new_user, address)
        return key

    async def user_key(self, address: str) -> str:
        """The canonical key of an existing user (a@rocky9-3 -> a@hamap.local); UnknownUser if none."""
        return await self._read(dr.existing_user, address)

    async def set_password(self, address: str, password: str) -> str:
        key = await self.user_key(address)
        hashed = await self.verifier.hash(password)
        result = await self._write(dr.set_password, address, hashed, self.clock.time())
        assert result == key
        return result

    async def set_disabled(self, address: str, disabled: bool) -> str:
        return await self._write(dr.set_disabled, address, disabled, self.clock.time())

    async def delete_user(self, address: str) -> str:
        return await self._write(dr.delete_user, address)

    async def list_users(self, domain: str | None = None) -> list[UserInfo]:
        return await self._read(dr.list_users, domain)

    # aliases

    async def add_alias(self, source: str, targets: Sequence[str]) -> AliasInfo:
        return await self._write(dr.add_alias, source, dr.clean_targets(targets))

    async def delete_alias(self, source: str, target: str | None = None) -> AliasInfo:
        """Remove one target, or the whole alias. Returns what is left."""
        return await self._write(dr.delete_alias, source, target)

    async def list_aliases(self) -> list[AliasInfo]:
        return await self._read(dr.list_aliases)

    # access rules

    async def put_access_rules(self, rules: Iterable[AccessRule], *, replace: bool = False) -> PutResult:
        """Add or update rules (one transaction). `replace` first deletes every existing rule, as
        rebuilding access.db from the text file would."""
        return await self._write(dr.put_access_rules, list(rules), replace)

    async def delete_access_rule(self, tag: Tag, pattern: str) -> AccessRule:
        return await self._write(dr.delete_access_rule, tag, normalize_pattern(tag, pattern), pattern)

    async def list_access_rules(self) -> list[AccessRule]:
        return await self._read(dr.list_access_rules)

    # copying a whole directory to another backend (`mailcove db copy`)

    async def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table in one consistent read, password hashes included."""
        return await self._read(dr.dump)

    async def load(self, tables: dict[str, list[tuple[Any, ...]]]) -> None:
        """Write a dump into this directory, which must be empty, in one transaction."""
        await self._write(dr.load, tables)


# --- copying a directory between backends (`mailcove db copy`) ----------------------------------


@dataclass(frozen=True, slots=True)
class DirectoryDump:
    """Every row of a directory, password hashes included (never passwords: none are stored)."""

    domains: list[tuple[Any, ...]]
    users: list[tuple[Any, ...]]
    aliases: list[tuple[Any, ...]]
    access: list[tuple[Any, ...]]


async def export_directory(d: DatabaseDirectory) -> DirectoryDump:
    """Read every row of `d` (either backend) in one consistent read."""
    return DirectoryDump(**await d.dump())


async def import_directory(d: DatabaseDirectory, dump: DirectoryDump) -> None:
    """Write `dump` into `d` (either backend), which must be empty, in one transaction."""
    await d.load({t: getattr(dump, t) for t in dr.TABLES})
