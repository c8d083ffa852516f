"""The directory's rules, written once for SQLite (sql.py) and PostgreSQL (postgres.py).

Each admin write and each read of the database itself is a sans-IO rule (store/sansio.py): it
validates, decides and raises here, and yields the typed statements below for the backend to run.
Each backend supplies only its SQL for these statements and its driver: SQLite runs a rule
inside `BEGIN IMMEDIATE` on the directory's one database thread, PostgreSQL on asyncpg inside a
transaction that holds the directory's advisory write lock. Both check the rule against the
database, never against the snapshot, so two admin commands racing cannot both succeed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mailcove.core.address import Address, AddressError, normalize_domain
from mailcove.directory.address_syntax import parse_mailbox
from mailcove.directory.api import AccessRule, Action, AliasInfo, DomainInfo, Tag, UserInfo
from mailcove.directory.errors import (
    BadAddress,
    DirectoryError,
    DomainExists,
    DomainInUse,
    UnknownAccessRule,
    UnknownAlias,
    UnknownDomain,
    UnknownUser,
    UserExists,
)
from mailcove.directory.snapshot import Snapshot, UserRecord
from mailcove.store.sansio import Rule, Statement, statements_of

# The tables, in the order a copy writes them (a domain before its aliases and users).
TABLES = ("domains", "users", "aliases", "access")
# The tables are the same in both databases. What a rule reads of an access rule, in this order:
RULE_COLUMNS = "tag, key, pattern, action, reply_code, reply_enhanced, reply_text"
# What DumpTable reads and LoadRows writes of each table: (every column, an order that loads
# back: primary domains before their aliases). A dump of one backend loads into the other.
DUMP_COLUMNS = {
    "domains": ("name, alias_of, created", "alias_of IS NOT NULL, name"),
    "users": ("address, local, domain, password, disabled, created, changed", "address"),
    "aliases": ("source, target, position", "source, position"),
    "access": (f"{RULE_COLUMNS}, position", "position"),
}


@dataclass(frozen=True, slots=True)
class PutResult:
    created: int
    updated: int


# --- statements: what a rule asks of the database ------------------------------------------------
# Results: rows are tuples in the column order named; "n" is a count.


@dataclass(frozen=True, slots=True)
class AllDomains(Statement):
    """-> [(name, alias_of)] by name"""


@dataclass(frozen=True, slots=True)
class AllUsers(Statement):
    """-> [(address, password, disabled, created)]"""


@dataclass(frozen=True, slots=True)
class AllAliases(Statement):
    """-> [(source, target)] by source, then position"""


@dataclass(frozen=True, slots=True)
class AllRules(Statement):
    """-> [(tag, key, pattern, action, reply_code, reply_enhanced, reply_text)] by position"""


@dataclass(frozen=True, slots=True)
class PrimaryDomain(Statement):
    """-> the primary domain of `name` (itself, or what it is an alias of), None if unknown"""

    name: str


@dataclass(frozen=True, slots=True)
class InsertDomain(Statement):
    name: str
    alias_of: str | None
    created: float


@dataclass(frozen=True, slots=True)
class DomainUse(Statement):
    """-> (users in it, alias sources "...@name", [alias domains of it])"""

    name: str


@dataclass(frozen=True, slots=True)
class DeleteDomain(Statement):
    name: str


@dataclass(frozen=True, slots=True)
class HasUser(Statement):
    """-> bool"""

    address: str


@dataclass(frozen=True, slots=True)
class InsertUser(Statement):
    address: str
    local: str
    domain: str
    password: str
    disabled: bool
    created: float


@dataclass(frozen=True, slots=True)
class SetPassword(Statement):
    """`if_password`: only if the stored hash is still this one (compare-and-set)."""

    address: str
    password: str
    changed: float
    if_password: str | None = None


@dataclass(frozen=True, slots=True)
class SetDisabled(Statement):
    address: str
    disabled: bool
    changed: float


@dataclass(frozen=True, slots=True)
class DeleteUser(Statement):
    address: str


@dataclass(frozen=True, slots=True)
class UserList(Statement):
    """-> [(address, disabled, created)] by domain, then local part; one domain or all"""

    domain: str | None


@dataclass(frozen=True, slots=True)
class AliasTargets(Statement):
    """-> [target] by position"""

    source: str


@dataclass(frozen=True, slots=True)
class AddAliasTarget(Statement):
    """Appended at `position`; a target the alias already has is left as it is."""

    source: str
    target: str
    position: int


@dataclass(frozen=True, slots=True)
class LastAliasPosition(Statement):
    """-> the highest position of the alias's targets, 0 if none"""

    source: str


@dataclass(frozen=True, slots=True)
class DeleteAlias(Statement):
    """One target, or (None) the whole alias."""

    source: str
    target: str | None


@dataclass(frozen=True, slots=True)
class DeleteAllRules(Statement):
    pass


@dataclass(frozen=True, slots=True)
class LastRulePosition(Statement):
    """-> the highest position of any access rule, 0 if none"""


@dataclass(frozen=True, slots=True)
class RuleByKey(Statement):
    """-> (tag, key, pattern, action, reply_code, reply_enhanced, reply_text) or None"""

    tag: str
    key: str


@dataclass(frozen=True, slots=True)
class UpdateRule(Statement):
    rule: AccessRule


@dataclass(frozen=True, slots=True)
class InsertRule(Statement):
    rule: AccessRule
    position: int


@dataclass(frozen=True, slots=True)
class DeleteRule(Statement):
    tag: str
    key: str


@dataclass(frozen=True, slots=True)
class DumpTable(Statement):
    """-> every row of `table` (one of TABLES), with all its columns, in a stable order"""

    table: str


@dataclass(frozen=True, slots=True)
class LoadRows(Statement):
    """Insert rows as DumpTable gave them."""

    table: str
    rows: Sequence[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class IsEmpty(Statement):
    """-> True when the directory has no domain and no access rule"""


# --- pure helpers ----------------------------------------------------------------------------------


def parse_user_address(text: str, *, new: bool = False) -> Address:
    """An address the directory is given. A `new` one (a user, alias or target being added) must
    be RFC 5321/6531 syntax (address_syntax.py); one that only looks up what exists is parsed
    leniently, so an account made before that check can still be found and removed."""
    if new:
        addr = parse_mailbox(text)
    else:
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


def row_rule(row: Sequence[Any]) -> AccessRule:
    tag, key, pattern, action, code, enh, text = row
    return AccessRule(Tag(tag), key, pattern, Action(action), code, enh, text)


def rule_row(r: AccessRule) -> tuple[Any, ...]:
    return (r.tag.value, r.key, r.pattern, r.action.value, r.reply_code, r.reply_enhanced, r.reply_text)


def like_suffix(text: str) -> str:
    """A LIKE pattern (ESCAPE '\\') matching strings that end with "@" + text."""
    return "%@" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# --- reading -------------------------------------------------------------------------------------


def load_snapshot(postmaster: str | None) -> Rule[Snapshot]:
    """The whole directory as one Snapshot (the backend runs this in one read transaction)."""
    domains = {n: a for n, a in (yield AllDomains())}
    users = {a: UserRecord(a, p, bool(d), c) for a, p, d, c in (yield AllUsers())}
    aliases: dict[str, list[str]] = {}
    for s, t in (yield AllAliases()):
        aliases.setdefault(s, []).append(t)
    rules = [row_rule(r) for r in (yield AllRules())]
    return Snapshot(domains, users, {k: tuple(v) for k, v in aliases.items()}, rules, postmaster=postmaster)


def list_domains() -> Rule[list[DomainInfo]]:
    return [DomainInfo(n, a) for n, a in (yield AllDomains())]


def list_users(domain: str | None) -> Rule[list[UserInfo]]:
    primary = None
    if domain:
        d = parse_domain(domain)
        primary = yield PrimaryDomain(d)
        if primary is None:
            raise UnknownDomain(f"unknown domain: {d}")
    return [UserInfo(a, bool(x), t) for a, x, t in (yield UserList(primary))]


def list_aliases() -> Rule[list[AliasInfo]]:
    out: dict[str, list[str]] = {}
    for s, t in (yield AllAliases()):
        out.setdefault(s, []).append(t)
    return [AliasInfo(s, tuple(ts)) for s, ts in out.items()]


def list_access_rules() -> Rule[list[AccessRule]]:
    return [row_rule(r) for r in (yield AllRules())]


# --- domains -------------------------------------------------------------------------------------


def add_domain(name: str, alias_of: str | None, now: float) -> Rule[DomainInfo]:
    d = parse_domain(name)
    target = parse_domain(alias_of) if alias_of else None
    if (yield PrimaryDomain(d)) is not None:
        raise DomainExists(f"domain already exists: {d}")
    canon = target
    if target is not None:
        canon = yield PrimaryDomain(target)  # an alias of an alias points at the primary: no chains
        if canon is None:
            raise UnknownDomain(f"unknown domain: {target} (add it first)")
        if canon == d:
            raise DomainExists(f"{d} cannot be an alias of itself")
    yield InsertDomain(d, canon, now)
    return DomainInfo(d, canon)


def delete_domain(name: str) -> Rule[None]:
    d = parse_domain(name)
    if (yield PrimaryDomain(d)) is None:
        raise UnknownDomain(f"unknown domain: {d}")
    users, sources, aliases = yield DomainUse(d)
    problems = []
    if users:
        problems.append(f"{users} user(s)")
    if sources:
        problems.append(f"{sources} alias(es)")
    if aliases:
        problems.append("alias domain(s) " + ", ".join(aliases))
    if problems:
        raise DomainInUse(f"domain {d} still has {' and '.join(problems)}; delete them first")
    yield DeleteDomain(d)


# --- users ---------------------------------------------------------------------------------------


def canonical_user(address: str, *, new: bool = False) -> Rule[tuple[str, str, str]]:
    """(key, local part, primary domain): the key is the lower-cased local part @ the primary."""
    addr = parse_user_address(address, new=new)
    dom = yield PrimaryDomain(addr.domain)
    if dom is None:
        raise UnknownDomain(f"unknown domain: {addr.domain} (add it with `mailcove domain add {addr.domain}`)")
    local = addr.local.lower()
    return f"{local}@{dom}", local, dom


def check_new_user(address: str) -> Rule[tuple[str, str, str]]:
    key, local, dom = yield from canonical_user(address, new=True)
    if (yield HasUser(key)):
        raise UserExists(f"user already exists: {key}")
    return key, local, dom


def existing_user(address: str) -> Rule[str]:
    key, _, _ = yield from canonical_user(address)
    if not (yield HasUser(key)):
        raise UnknownUser(f"unknown user: {key}")
    return key


def add_user(address: str, hashed: str, disabled: bool, now: float) -> Rule[UserInfo]:
    key, local, dom = yield from check_new_user(address)
    yield InsertUser(key, local, dom, hashed, disabled, now)
    return UserInfo(key, disabled, now)


def set_password(address: str, hashed: str, now: float) -> Rule[str]:
    key = yield from existing_user(address)
    yield SetPassword(key, hashed, now)
    return key


def rehash(address: str, old: str, new: str, now: float) -> Rule[None]:
    # Compare-and-set: if an administrator changed the password meanwhile, keep theirs.
    yield SetPassword(address, new, now, if_password=old)


def set_disabled(address: str, disabled: bool, now: float) -> Rule[str]:
    key = yield from existing_user(address)
    yield SetDisabled(key, disabled, now)
    return key


def delete_user(address: str) -> Rule[str]:
    key = yield from existing_user(address)
    yield DeleteUser(key)
    return key


# --- aliases -------------------------------------------------------------------------------------


def alias_source(source: str, *, new: bool = False) -> Rule[str]:
    """"a@domain" as a user key, or a catch-all "@domain" on the primary domain."""
    s = source.strip()
    if s.startswith("@"):
        dom = parse_domain(s[1:])
        primary = yield PrimaryDomain(dom)
        if primary is None:
            raise UnknownDomain(f"unknown domain: {dom}")
        return "@" + primary
    key, _, _ = yield from canonical_user(s, new=new)
    return key


def clean_targets(targets: Sequence[str]) -> list[str]:
    """Parsed targets, each once (case-insensitively), in the order given."""
    if not targets:
        raise BadAddress("an alias needs at least one target")
    clean: list[str] = []
    for t in targets:
        addr = parse_user_address(t, new=True)
        text = f"{addr.local}@{addr.domain}"
        if text.lower() not in (x.lower() for x in clean):
            clean.append(text)
    return clean


def add_alias(source: str, targets: Sequence[str]) -> Rule[AliasInfo]:
    src = yield from alias_source(source, new=True)
    pos = yield LastAliasPosition(src)
    for t in targets:
        pos += 1
        yield AddAliasTarget(src, t, pos)
    return AliasInfo(src, tuple((yield AliasTargets(src))))


def delete_alias(source: str, target: str | None) -> Rule[AliasInfo]:
    src = yield from alias_source(source)
    existing = yield AliasTargets(src)
    if not existing:
        raise UnknownAlias(f"unknown alias: {src}")
    if target is None:
        yield DeleteAlias(src, None)
        return AliasInfo(src, ())
    match = [t for t in existing if t.lower() == target.strip().lower()]
    if not match:
        raise UnknownAlias(f"alias {src} has no target {target.strip()}")
    yield DeleteAlias(src, match[0])
    return AliasInfo(src, tuple((yield AliasTargets(src))))


# --- access rules --------------------------------------------------------------------------------


def put_access_rules(rules: Sequence[AccessRule], replace: bool) -> Rule[PutResult]:
    if replace:
        yield DeleteAllRules()
    pos = yield LastRulePosition()
    created = updated = 0
    for r in rules:
        if (yield RuleByKey(r.tag.value, r.key)) is not None:
            updated += 1
            yield UpdateRule(r)
        else:
            created += 1
            pos += 1
            yield InsertRule(r, pos)
    return PutResult(created, updated)


def delete_access_rule(tag: Tag, key: str, pattern: str) -> Rule[AccessRule]:
    row = yield RuleByKey(tag.value, key)
    if row is None:
        label = f"{tag.value}:{pattern.strip()}" if tag is not Tag.ANY else pattern.strip()
        raise UnknownAccessRule(f"no access rule for {label}")
    yield DeleteRule(tag.value, key)
    return row_rule(row)


# --- copying a whole directory between backends (`mailcove db copy`) ---------------------------


def dump() -> Rule[dict[str, list[tuple[Any, ...]]]]:
    tables: dict[str, list[tuple[Any, ...]]] = {}
    for t in TABLES:
        tables[t] = [tuple(r) for r in (yield DumpTable(t))]
    return tables


def load(tables: dict[str, list[tuple[Any, ...]]]) -> Rule[None]:
    if not (yield IsEmpty()):
        raise DirectoryError("the target directory is not empty")
    for t in TABLES:
        yield LoadRows(t, tables[t])


STATEMENTS = statements_of(globals())
