"""System users: the machine's Unix accounts are the mail users (`[directory] users = "system"`).

This is the seed's `useradd a; passwd a`: `a@` on every local domain, and the bare login `a`, is the
Unix account `a`, whose password is checked through PAM or against /etc/shadow. Domains, aliases,
access and relay rules still come from the mailcove directory (SystemDirectory is a SqliteDirectory
whose user table is replaced by the system's accounts), so `mailcove domain add`, `alias add` and
`access add` work unchanged; `user add` / `passwd` / `disable` point at useradd and passwd.

Which accounts are mail users: UIDs in [UID_MIN, UID_MAX] of /etc/login.defs (or the
`system_min_uid` / `system_max_uid` keys), plus the names in `system_users_allow`; root never.
The store account of system user `a` is named `a` (one mailbox set for every local domain).

Everything that may block runs off the event loop: NSS lookups (getpwnam may ask LDAP or sssd)
and ~/.forward reads in a small lookup pool, password checks (PAM, crypt) in the directory's
bounded verify pool, so a slow PAM stack costs queue slots (DirectoryBusy past the limit), never the
loop, and the shared login throttle delays the failures. docs/system-users.md is the user's guide.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mailcove.core.address import Address, AddressError
from mailcove.core.clock import SYSTEM_CLOCK, Clock
from mailcove.directory import forward_file
from mailcove.directory.api import Alias, Invalid, Local, Principal, Remote, Resolution, UserInfo
from mailcove.directory.errors import DirectoryBusy, DirectoryError, UnknownUser
from mailcove.directory.passwords import MAX_PASSWORD_BYTES
from mailcove.directory.snapshot import MAX_ALIAS_DEPTH, MAX_ALIAS_TARGETS, Snapshot
from mailcove.directory.sql import DB_NAME, SqliteDirectory
from mailcove.directory.system_shadow import (
    ShadowEntry,
    ShadowFile,
    make_dummy_hash,
    password_bytes,
    verify_hash,
)

if TYPE_CHECKING:
    from mailcove.config.settings import DirectorySettings, Settings
    from mailcove.store.api import MailStore

log = logging.getLogger("mailcove.directory")
T = TypeVar("T")

LOGIN_DEFS = "/etc/login.defs"
DEFAULT_UID_RANGE = (1000, 60000)  # Debian's and most distributions' defaults
# What useradd accepts by default (Debian's NAME_REGEX, lower case), at most 32 characters. Any
# other text is refused before it reaches NSS or PAM.
NAME_RE = re.compile(r"[a-z_][a-z0-9_.-]{0,30}[a-z0-9_.$-]?")
LOOKUP_TTL = 2.0  # seconds a getpwnam answer is reused: RCPT storms cost one NSS query per name
SHADOW_HINT = (
    "this process (uid {uid}) cannot read /etc/shadow: add its user to the 'shadow' group"
    " (systemd: SupplementaryGroups=shadow) or run it as root; see docs/system-users.md"
)


def login_defs_range(path: str = LOGIN_DEFS) -> tuple[int, int]:
    """UID_MIN and UID_MAX from login.defs; the defaults for what it lacks or cannot be read."""
    lo, hi = DEFAULT_UID_RANGE
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return lo, hi
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("UID_MIN", "UID_MAX"):
            try:
                value = int(parts[1], 0)
            except ValueError:
                continue
            if parts[0] == "UID_MIN":
                lo = value
            else:
                hi = value
    return lo, hi


@dataclass(frozen=True, slots=True)
class SystemUser:
    name: str
    uid: int
    gid: int
    home: str


class SystemAccounts:
    """Which Unix accounts are mail users. Thread-safe; answers are cached for LOOKUP_TTL."""

    def __init__(
        self,
        min_uid: int,
        max_uid: int,
        allow: tuple[str, ...] = (),
        *,
        ttl: float = LOOKUP_TTL,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.min_uid = max(1, min_uid)  # uid 0 is root under any name
        self.max_uid = max_uid
        self.allow = frozenset(a.lower() for a in allow)
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, SystemUser | None, str]] = {}

    @classmethod
    def from_settings(cls, d: DirectorySettings) -> SystemAccounts:
        lo, hi = login_defs_range()
        return cls(d.system_min_uid or lo, d.system_max_uid or hi, tuple(d.system_users_allow))

    def check(self, name: str) -> tuple[SystemUser | None, str]:
        """(the user, "") or (None, why not). Blocking (NSS): call from a worker thread."""
        now = self._clock.monotonic()
        with self._lock:
            hit = self._cache.get(name)
            if hit is not None and hit[0] > now:
                return hit[1], hit[2]
        user, why = self._check(name)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[name] = (now + self.ttl, user, why)
        return user, why

    def lookup(self, name: str) -> SystemUser | None:
        return self.check(name)[0]

    def _check(self, name: str) -> tuple[SystemUser | None, str]:
        if not NAME_RE.fullmatch(name):
            return None, "not a valid Unix user name"
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            return None, "no such Unix account"
        return self._judge(pw)

    def _judge(self, pw: pwd.struct_passwd) -> tuple[SystemUser | None, str]:
        if pw.pw_uid == 0:
            return None, "root is never a mail user"
        if pw.pw_name.lower() not in self.allow and not (self.min_uid <= pw.pw_uid <= self.max_uid):
            return None, (
                f"uid {pw.pw_uid} is outside {self.min_uid}..{self.max_uid} (UID_MIN..UID_MAX) and the"
                " account is not in [directory] system_users_allow"
            )
        return SystemUser(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir), ""

    def all_users(self) -> list[SystemUser]:
        out = []
        for pw in pwd.getpwall():
            user, _ = self._judge(pw)
            if user is not None and NAME_RE.fullmatch(user.name):
                out.append(user)
        return sorted(out, key=lambda u: u.name)


class SystemSnapshot(Snapshot):
    """The directory's domains, aliases and rules with the system's accounts as its users.
    `resolve` calls NSS and `expand_forwards` reads ~/.forward files: SystemDirectory runs both
    in a worker thread."""

    accounts: SystemAccounts
    forward: bool

    @classmethod
    def wrap(cls, snap: Snapshot, accounts: SystemAccounts, forward: bool) -> SystemSnapshot:
        obj = cls.__new__(cls)
        obj.__dict__.update(snap.__dict__)
        obj.users = {}  # the argon2 user table does not apply in this mode
        obj.by_local = {}
        obj.accounts = accounts
        obj.forward = forward
        return obj

    def user_key(self, local: str, domain: str) -> str | None:
        user = self.accounts.lookup(local)
        return user.name if user is not None else None

    def login_name(self, username: str) -> tuple[str | None, str | None]:
        """(Unix name, primary domain or None) for a login `a` or `a@<local domain>`."""
        u = username.strip()
        if "@" not in u:
            return (u.lower() or None), None
        try:
            addr = Address.parse(u)
        except AddressError:
            return None, None
        canon = self.canonical_domain(addr.domain)
        if canon is None:
            return None, None
        return addr.local.lower(), canon

    def default_domain(self, fallback: str) -> str:
        primaries = sorted(d for d, alias_of in self.domains.items() if alias_of is None)
        return primaries[0] if primaries else fallback

    # --- ~/.forward ------------------------------------------------------------------------------

    def expand_forwards(self, res: Resolution, address: str) -> Resolution:
        """`res` (this snapshot's answer for `address`) with the local users' ~/.forward applied."""
        if not self.forward or isinstance(res, Remote | Invalid):
            return res
        targets = res.targets if isinstance(res, Alias) else (res,)
        if not any(isinstance(t, Local) for t in targets):
            return res
        _, _, domain = address.strip().strip("<>").rpartition("@")
        canon = self.canonical_domain(domain) or self.default_domain(domain)
        out: dict[str, Local | Remote] = {}
        changed = self._expand_forward(targets, canon, set(), 0, out)
        if not changed or tuple(out.values()) == targets:
            return res
        return Alias(tuple(out.values())) if out else res

    def _expand_forward(
        self, targets: tuple[Local | Remote, ...], domain: str, visited: set[str], depth: int,
        out: dict[str, Local | Remote],
    ) -> bool:
        changed = False
        for t in targets:
            if len(out) >= MAX_ALIAS_TARGETS:
                break
            if isinstance(t, Remote):
                out.setdefault("r:" + t.address.lower(), t)
                continue
            if t.user in visited or depth >= MAX_ALIAS_DEPTH:
                # "a" in a's own .forward (keep a copy), or a loop: deliver here, as Sendmail does.
                out.setdefault("l:" + t.user, t)
                continue
            visited.add(t.user)
            user = self.accounts.lookup(t.user)
            entries = forward_file.read_forward(user.home, user.uid) if user is not None else None
            if user is None or not entries:
                out.setdefault("l:" + t.user, t)
                continue
            changed = True
            usable = False
            for e in entries:
                if e.kind is forward_file.Kind.LOCAL:
                    if self.accounts.lookup(e.value) is not None:
                        out.setdefault("l:" + e.value, Local(e.value))
                        usable = True
                    else:
                        log.info("%s/.forward: \\%s is not a mail user; skipped", user.home, e.value)
                elif e.kind is forward_file.Kind.ADDRESS:
                    target = e.value if "@" in e.value else f"{e.value}@{domain}"
                    sub = self.resolve(target)
                    if isinstance(sub, Invalid):
                        log.info("%s/.forward: %s: %s; skipped", user.home, e.value, sub.reason)
                        continue
                    subs = sub.targets if isinstance(sub, Alias) else (sub,)
                    self._expand_forward(subs, domain, visited, depth + 1, out)
                    usable = True
                else:
                    log.warning(
                        "%s/.forward: %s entry %r is not supported (mailcove runs no programs and writes"
                        " no files for users); skipped", user.home, e.kind.value, e.value[:80],
                    )
            if not usable:
                # Nothing usable in the file (only |program lines, say): keep the mail, in the mailbox.
                out.setdefault("l:" + t.user, t)
        return changed


class SystemDirectory(SqliteDirectory):
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        system_auth: str = "pam",
        pam_service: str = "mailcove",
        accounts: SystemAccounts | None = None,
        forward: bool = True,
        store: MailStore | None = None,
        default_domain: str = "localhost",
        shadow: ShadowFile | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(path, **kwargs)
        if system_auth not in ("pam", "shadow"):
            raise DirectoryError(f"[directory] system_auth must be \"pam\" or \"shadow\", not {system_auth!r}")
        self.system_auth = system_auth
        self.pam_service = pam_service
        self.accounts = accounts if accounts is not None else SystemAccounts(*DEFAULT_UID_RANGE)
        self.forward = forward
        self.store = store
        self.fallback_domain = default_domain
        self.shadow = shadow if shadow is not None else ShadowFile()
        self._lookups = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mailcove-sysusers")
        self._known_accounts: set[str] = set()
        self._dummy_hash: str | None = None
        self._warned_table = False

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> SystemDirectory:  # type: ignore[override]
        d = settings.directory
        kwargs.setdefault("postmaster", d.postmaster or None)
        kwargs.setdefault("reload_interval", d.reload_interval)
        kwargs.setdefault("relay_from_localhost", d.relay_from_localhost)
        kwargs.setdefault("system_auth", d.system_auth)
        kwargs.setdefault("pam_service", d.pam_service)
        kwargs.setdefault("forward", d.system_forward)
        kwargs.setdefault("accounts", SystemAccounts.from_settings(d))
        kwargs.setdefault("default_domain", settings.hostname)
        return cls(Path(settings.data_dir) / DB_NAME, auth=settings.auth, **kwargs)

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        # Fail at start, not at the first login, when the library behind the chosen check is missing.
        if self.system_auth == "pam":
            from mailcove.directory import pam_auth

            pam_auth._get()
        else:
            from mailcove.directory import system_shadow

            system_shadow._libcrypt()
        await super().start()
        self._startup_warnings()

    def _startup_warnings(self) -> None:
        a = self.accounts
        log.info(
            "users are the system's accounts (uid %d..%d%s), passwords checked by %s",
            a.min_uid, a.max_uid, f" and {', '.join(sorted(a.allow))}" if a.allow else "",
            f"PAM service {self.pam_service!r}" if self.system_auth == "pam" else "/etc/shadow",
        )
        if not self.shadow.readable():
            hint = SHADOW_HINT.format(uid=os.geteuid())
            if self.system_auth == "shadow":
                log.warning("system users: logins will fail: %s", hint)
            else:
                log.warning("system users: PAM's pam_unix cannot check other users' passwords: %s", hint)
        if self.system_auth == "pam" and not Path("/etc/pam.d", self.pam_service).exists():
            log.warning(
                "system users: /etc/pam.d/%s does not exist, so PAM uses /etc/pam.d/other; install"
                " contrib/pam.d/mailcove there", self.pam_service,
            )

    async def close(self) -> None:
        await super().close()
        self._lookups.shutdown(wait=False, cancel_futures=True)

    async def _lookup(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._lookups, fn, *args)

    def _load_if_changed(self, force: bool) -> Snapshot | None:
        snap = super()._load_if_changed(force)
        if snap is None:
            return None
        if snap.users and not self._warned_table:
            self._warned_table = True
            log.warning(
                "system users: the %d user(s) in the mailcove user table are ignored while"
                " [directory] users = \"system\"", len(snap.users),
            )
        return SystemSnapshot.wrap(snap, self.accounts, self.forward)

    async def system_snapshot(self) -> SystemSnapshot:
        snap = await self.snapshot()
        assert isinstance(snap, SystemSnapshot)
        return snap

    # --- recipients --------------------------------------------------------------------------------

    async def resolve(self, address: str) -> Resolution:
        snap = await self.system_snapshot()
        res = await self._lookup(snap.resolve, address)
        await self._ensure_accounts(res)
        return res

    async def expand_forwards(self, res: Resolution, address: str) -> Resolution:
        """Delivery's second step (delivery.resolve calls it): follow ~/.forward files, read now,
        at delivery time, as Sendmail does. Kept out of `resolve`, which also answers "who owns
        this address" for SMTP's MAIL FROM check: a user who forwards their mail away still
        owns their address."""
        snap = await self.system_snapshot()
        out = await self._lookup(snap.expand_forwards, res, address)
        if out is not res:
            await self._ensure_accounts(out)
        return out

    async def _ensure_accounts(self, res: Resolution) -> None:
        """A system user's store account is made the first time mail is resolved to them (or they
        log in), as Dovecot makes a mailbox on first use."""
        if self.store is None or isinstance(res, Remote | Invalid):
            return
        targets = res.targets if isinstance(res, Alias) else (res,)
        for t in targets:
            if isinstance(t, Local) and t.user not in self._known_accounts:
                try:
                    if not await self.store.account_exists(t.user):
                        await self.store.create_account(t.user)
                        log.info("system user %s: store account created", t.user)
                except Exception:  # the delivery itself will report a store failure properly
                    log.warning("system user %s: could not create the store account", t.user, exc_info=True)
                    continue
                self._known_accounts.add(t.user)

    # --- logins ------------------------------------------------------------------------------------

    async def _check_login(self, username: str, password: str, client_ip: str | None) -> Principal | None:
        # SqliteDirectory.authenticate runs this inside the login throttle.
        snap = await self.system_snapshot()
        if not password or len(password_bytes(password)) > MAX_PASSWORD_BYTES:
            # Before the lookup: the same answer in the same time whether the name exists or not.
            log.info("login of %r refused: empty or too long password", username[:64])
            return None
        name, domain = snap.login_name(username)
        user, why = (None, "not a valid login name") if name is None else await self._lookup(self.accounts.check, name)
        if user is None:
            log.info("login of %r refused: %s", username[:64], why)
            await self._dummy_check(password)
            return None
        ok, reason = await self._check_password(user, password, client_ip)
        if not ok:
            log.info("login of %s failed: %s", user.name, reason)
            return None
        await self._ensure_accounts(Local(user.name))
        return Principal(user.name, f"{user.name}@{domain or snap.default_domain(self.fallback_domain)}", username)

    async def _dummy_check(self, password: str) -> None:
        """As long as a real check, so response time does not tell which names are mail users."""
        try:
            if self._dummy_hash is None:
                self._dummy_hash = str(await self.verifier._submit(make_dummy_hash))
            pw = password_bytes(password)[:MAX_PASSWORD_BYTES] or b"x"
            await self.verifier._submit(verify_hash, pw, self._dummy_hash)
        except DirectoryBusy:
            raise  # the caller answers "try again", as for a real check
        except Exception:  # no libcrypt: the login fails anyway
            return

    def _shadow_entry(self, name: str) -> tuple[ShadowEntry | None, str]:
        try:
            entry = self.shadow.get(name)
        except PermissionError:
            return None, SHADOW_HINT.format(uid=os.geteuid())
        except OSError as exc:
            return None, f"/etc/shadow: {exc.strerror or exc}"
        if entry is None:
            return None, "the account has no /etc/shadow entry"
        return entry, ""

    async def _check_password(self, user: SystemUser, password: str, client_ip: str | None) -> tuple[bool, str]:
        entry, shadow_error = await self._lookup(self._shadow_entry, user.name)
        # The success cache (passwords.py) is keyed by the whole shadow line, so a password change,
        # a lock (passwd -l) or an expiry date ends a cached login at once. Without a readable
        # shadow line (PAM over LDAP, or no shadow group) nothing is cached.
        stored = f"{self.system_auth}:{self.pam_service}:{entry.fingerprint()}" if entry is not None else None
        v = self.verifier
        if entry is not None:
            refusal = entry.refusal()
            if refusal is not None:
                return False, refusal
            key = v.cache_key(user.name, password, stored or "")
            if v._cache_hit(key):
                return True, ""
        if self.system_auth == "shadow":
            if entry is None:
                return False, shadow_error
            pw = password_bytes(password)
            ok = bool(await v._submit(verify_hash, pw, entry.hash))
            reason = "" if ok else "wrong password"
        else:
            from mailcove.directory.pam_auth import PamResult, pam_check

            result = await v._submit(pam_check, self.pam_service, user.name, password, client_ip)
            assert isinstance(result, PamResult)
            ok = result.ok
            reason = f"PAM {result.step}: {result.reason}"
            if not ok and shadow_error and os.geteuid() != 0:
                reason += f" ({shadow_error})"
        if ok and stored is not None:
            v._cache_put(v.cache_key(user.name, password, stored))
        return ok, reason

    # --- admin -------------------------------------------------------------------------------------

    def _refuse(self, what: str) -> DirectoryError:
        return DirectoryError(
            f"users are the system's Unix accounts ([directory] users = \"system\"): {what}"
        )

    async def add_user(self, address: str, password: str, *, disabled: bool = False) -> UserInfo:
        raise self._refuse("add one with `useradd -m NAME` and `passwd NAME`")

    async def check_new_user(self, address: str) -> str:
        raise self._refuse("add one with `useradd -m NAME` and `passwd NAME`")

    async def set_password(self, address: str, password: str) -> str:
        raise self._refuse("change a password with `passwd NAME`")

    async def set_disabled(self, address: str, disabled: bool) -> str:
        raise self._refuse("lock or unlock an account with `usermod -L NAME` / `usermod -U NAME`")

    async def delete_user(self, address: str) -> str:
        raise self._refuse("remove one with `userdel NAME`")

    async def user_key(self, address: str) -> str:
        snap = await self.system_snapshot()
        name, _ = snap.login_name(address)
        user, why = (None, "not a valid name") if name is None else await self._lookup(self.accounts.check, name)
        if user is None:
            raise UnknownUser(f"not a mail user: {address} ({why})")
        return user.name

    async def list_users(self, domain: str | None = None) -> list[UserInfo]:
        users = await self._lookup(self.accounts.all_users)
        return [UserInfo(u.name) for u in users]
