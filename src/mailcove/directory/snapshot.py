"""An immutable in-memory picture of the directory, and the lookups on it.

The SQL backend reloads a whole Snapshot when the database changes, so every lookup on the hot path
(RCPT TO, LOGIN) is a few dict probes on the event loop with no I/O at all. Reloading 10,000 users
takes a few tens of milliseconds in a thread (docs/design/directory.md); directories far larger than
that want a backend that queries per lookup, which the Directory protocol allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mailcove.core.address import Address, AddressError, normalize_domain
from mailcove.directory.access import AccessTable
from mailcove.directory.api import AccessRule, Alias, Invalid, Local, Remote, Resolution

# Sendmail's MaxAliasRecursion is 10; a chain deeper than that is a mistake, not a design.
MAX_ALIAS_DEPTH = 10
# One alias may fan out to many addresses, but not without bound: a mail-bomb amplifier otherwise.
MAX_ALIAS_TARGETS = 1000


@dataclass(frozen=True, slots=True)
class UserRecord:
    address: str
    password: str
    disabled: bool
    created: float


class Snapshot:
    def __init__(
        self,
        domains: Mapping[str, str | None],
        users: Mapping[str, UserRecord],
        aliases: Mapping[str, tuple[str, ...]],
        rules: Iterable[AccessRule],
        *,
        postmaster: str | None = None,
    ) -> None:
        self.domains = dict(domains)
        self.users = dict(users)
        self.aliases = dict(aliases)
        self.access = AccessTable(rules)
        self.postmaster = postmaster
        self.by_local: dict[str, list[str]] = {}
        for key in self.users:
            self.by_local.setdefault(key.rpartition("@")[0], []).append(key)

    @classmethod
    def empty(cls) -> Snapshot:
        return cls({}, {}, {}, [])

    # --- domains -----------------------------------------------------------------------------------

    def canonical_domain(self, domain: str) -> str | None:
        """The primary domain behind `domain` (itself, or what it is an alias of); None if not local."""
        try:
            d = normalize_domain(domain)
        except AddressError:
            return None
        if d not in self.domains:
            return None
        return self.domains[d] or d

    def is_local_domain(self, domain: str) -> bool:
        return self.canonical_domain(domain) is not None

    # --- logins ------------------------------------------------------------------------------------

    def find_login(self, username: str) -> UserRecord | None:
        """`a@hamap.local`, `a@rocky9-3` (a domain alias), or bare `a` when exactly one domain has
        an `a`. An ambiguous bare name matches nobody rather than guessing."""
        u = username.strip()
        if "@" in u:
            try:
                addr = Address.parse(u)
            except AddressError:
                return None
            canon = self.canonical_domain(addr.domain)
            if canon is None:
                return None
            return self.users.get(f"{addr.local.lower()}@{canon}")
        keys = self.by_local.get(u.lower(), [])
        return self.users[keys[0]] if len(keys) == 1 else None

    # --- recipients --------------------------------------------------------------------------------

    def user_key(self, local: str, domain: str) -> str | None:
        """The store account of user `local` in primary `domain`, None if there is none. The
        system-users directory (system.py) overrides this: there `a@` any local domain is `a`."""
        key = f"{local}@{domain}"
        return key if key in self.users else None

    def resolve(self, address: str) -> Resolution:
        text = address.strip()
        if text.startswith("<") and text.endswith(">"):
            text = text[1:-1]
        if "@" not in text and text.lower() == "postmaster":
            # RFC 5321 4.5.1: a bare "postmaster" recipient must be accepted.
            if self.postmaster is None:
                return Invalid("no postmaster address is configured")
            return self._finish_alias((self.postmaster,), set())
        try:
            addr = Address.parse(text)
        except AddressError as exc:
            return Invalid(f"bad address syntax: {exc}")
        canon = self.canonical_domain(addr.domain)
        if canon is None:
            return Remote(str(addr))
        local = addr.local.lower()
        key = f"{local}@{canon}"
        kind, payload = self._step(local, canon)
        if kind == "user":
            assert isinstance(payload, Local)
            return payload
        if kind == "alias":
            assert isinstance(payload, tuple)
            return self._finish_alias(payload, {key})
        return Invalid(str(payload))

    def _finish_alias(self, targets: tuple[str, ...], visited: set[str]) -> Resolution:
        out: dict[str, Local | Remote] = {}
        self._expand(targets, visited, 1, out)
        if not out:
            return Invalid("alias expands to no deliverable address (a loop, or only unknown targets)")
        return Alias(tuple(out.values()))

    def _step(self, local: str, domain: str) -> tuple[str, Local | tuple[str, ...] | str]:
        """One level of lookup for a local domain, in precedence order: an alias for the exact
        address, a user, the same two without the +detail, postmaster, the domain catch-all."""
        key = f"{local}@{domain}"
        if key in self.aliases:
            return "alias", self.aliases[key]
        user = self.user_key(local, domain)
        if user is not None:
            return "user", Local(user)
        base, plus, detail = local.partition("+")
        if plus and base:
            bkey = f"{base}@{domain}"
            if bkey in self.aliases:
                return "alias", self.aliases[bkey]
            user = self.user_key(base, domain)
            if user is not None:
                return "user", Local(user, detail=detail or None)
        if (base or local) == "postmaster" and self.postmaster is not None:
            # An explicit postmaster@domain alias or user won above; this is the server-wide one.
            return "alias", (self.postmaster,)
        catch = f"@{domain}"
        if catch in self.aliases:
            return "alias", self.aliases[catch]
        return "invalid", f"no such user here: {key}"

    def _expand(self, targets: Iterable[str], visited: set[str], depth: int, out: dict[str, Local | Remote]) -> None:
        if depth > MAX_ALIAS_DEPTH:
            return
        for target in targets:
            if len(out) >= MAX_ALIAS_TARGETS:
                return
            try:
                addr = Address.parse(target)
            except AddressError:
                continue
            canon = self.canonical_domain(addr.domain)
            if canon is None:
                out.setdefault("r:" + addr.key, Remote(str(addr)))
                continue
            local = addr.local.lower()
            key = f"{local}@{canon}"
            if key in visited:
                # A loop, or Sendmail's "a: a, b" idiom (keep a copy and forward): a real user
                # named again is delivered to; anything else seen before is cut here.
                user = self.user_key(local, canon)
                if user is not None:
                    out.setdefault("l:" + user, Local(user))
                continue
            visited.add(key)
            kind, payload = self._step(local, canon)
            if kind == "alias":
                assert isinstance(payload, tuple)
                self._expand(payload, visited, depth + 1, out)
            elif kind == "user":
                assert isinstance(payload, Local)
                out.setdefault("l:" + payload.user, payload)
