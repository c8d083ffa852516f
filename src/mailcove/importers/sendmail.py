"""Sendmail's /etc/mail (and /etc/aliases) as a Plan: text in, changes and unmapped lines out.

What maps to what (docs/import.md has the table):
- local-host-names: local domains. Sendmail treats every name in it as the same set of users (a@
  any of them is the Unix user a), which is what a mailcove alias domain is; so one name becomes
  the primary domain and the others alias domains of it.
- access: the directory's access rules, through directory.access (the same parser and semantics
  as `mailcove access import`).
- aliases: aliases of the primary domain (so they work at every local domain, as in Sendmail).
- virtusertable: aliases and catch-alls; `@d %1@other` (every address at d, same local part at
  other) is an alias domain when `other` is local.
- mailertable: the [transport] table (and `.` = every domain: [relayhost]).
- relay-domains: RELAY rules for the domains (To:) and for clients in them (Connect:), which is
  what Sendmail's class R allows.
- sendmail.cf: only `Dj` (the official host name, $j) or else a dotted `Dw` ($w): `hostname`, the
  name the server greets with. Without either, the import takes the machine's FQDN
  (importers/hostname.py), and the report says which.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

from mailcove.core.address import Address, AddressError, normalize_domain
from mailcove.directory.access import make_rule, parse_access_file, parse_network
from mailcove.directory.api import Tag
from mailcove.directory.errors import BadAccessRule
from mailcove.importers.files import FileProblem, Files
from mailcove.importers.plan import AccessAdd, AliasAdd, ConfigSet, DomainAdd, Plan, Source

# Most targets one alias may list; a longer line is almost certainly not an alias.
MAX_TARGETS = 1000
# Longest logical line (an alias with its continuation lines), characters.
MAX_LOGICAL_LINE = 64 * 1024

# Files in /etc/mail that exist on most installs but that this import does not read, and why.
NOT_READ = {
    "sendmail.mc": "m4 source, not read: mailcove listens on every address and lets clients that logged in "
    "relay by default, which is what the seed's DAEMON_OPTIONS and TRUST_AUTH_MECH edits do",
    "submit.mc": "the local submission daemon's m4 source: `mailcove sendmail` replaces it",
    "genericstable": "outbound address rewriting has no mailcove equivalent",
    "domaintable": "domain rewriting has no mailcove equivalent",
    "authinfo": "client credentials for a smart host: set [relayhost] username and password_file by hand",
    "trusted-users": "not read: list the users whose `sendmail -f` needs no X-Authentication-Warning in "
    "[smtp] trusted_users by hand",
}

# Sendmail mailers that deliver by SMTP; anything else (local, procmail, uucp, ...) has no route.
SMTP_MAILERS = frozenset({"esmtp", "smtp", "smtp8", "dsmtp", "relay"})
_NAMED_ERRORS = {"nouser": ("5.1.1", "550"), "nohost": ("5.1.2", "550"), "unavailable": ("4.3.0", "451")}


@dataclass(frozen=True, slots=True)
class Target:
    """One alias target as written, with the physical line it is on."""

    text: str
    line: int


def _class_words(text: str) -> Iterator[tuple[int, str]]:
    """Words of a Sendmail class file (local-host-names, relay-domains): one or more per line,
    `#` starts a comment."""
    for lineno, raw in enumerate(text.splitlines(), 1):
        for word in raw.split("#", 1)[0].split():
            yield lineno, word


def _map_lines(text: str) -> Iterator[tuple[int, str, str, str]]:
    """`key value...` lines of a makemap source (virtusertable, mailertable): (line, raw, key, value)."""
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        yield lineno, raw, parts[0], parts[1].strip() if len(parts) > 1 else ""


# --- local-host-names --------------------------------------------------------------------------


def choose_primary(names: list[str]) -> str | None:
    """The domain the others become aliases of: the most general dotted name (hamap.local rather
    than mx1.hamap.local or the bare host name rocky9-3), the first listed on a tie."""
    if not names:
        return None
    dotted = [n for n in names if "." in n]
    pool = dotted or names
    return min(pool, key=lambda n: (n.count("."), pool.index(n)))


def plan_local_host_names(plan: Plan, path: str, text: str, primary: str | None) -> str | None:
    names: list[tuple[int, str]] = []
    for lineno, word in _class_words(text):
        if word.startswith("["):
            plan.skip(path, lineno, word, "an address literal is not a domain: mailcove accepts mail for its own "
                      "addresses (user@[IP]) without it")
            continue
        try:
            name = normalize_domain(word)
        except AddressError:
            plan.skip(path, lineno, word, "not a valid domain name")
            continue
        if name not in (n for _, n in names):
            names.append((lineno, name))
    chosen = primary or choose_primary([n for _, n in names])
    if chosen is None:
        return None
    where = {n: ln for ln, n in names}
    plan.domains.append(DomainAdd(chosen, None, Source(path, where.get(chosen, 0))))
    for lineno, name in names:
        if name != chosen:
            plan.domains.append(DomainAdd(name, chosen, Source(path, lineno)))
    return chosen


# --- access and relay-domains ------------------------------------------------------------------


def plan_access(plan: Plan, path: str, text: str) -> None:
    for line in parse_access_file(text):
        if line.rule is None:
            plan.skip(path, line.lineno, line.text, line.problem or "cannot be mapped")
        else:
            plan.access.append(AccessAdd(line.rule, Source(path, line.lineno)))


def plan_relay_domains(plan: Plan, path: str, text: str) -> None:
    """Class R: mail TO these domains may be relayed, and clients whose host name (or IP prefix)
    is in it may relay. An IP entry only makes sense for clients."""
    for lineno, word in _class_words(text):
        try:
            if parse_network(word) is not None:
                plan.access.append(AccessAdd(make_rule(Tag.CONNECT, word, "RELAY"), Source(path, lineno)))
                continue
            plan.access.append(AccessAdd(make_rule(Tag.CONNECT, word, "RELAY"), Source(path, lineno)))
            plan.access.append(AccessAdd(make_rule(Tag.TO, word, "RELAY"), Source(path, lineno)))
        except BadAccessRule as exc:
            plan.skip(path, lineno, word, str(exc))


# --- aliases -----------------------------------------------------------------------------------


def _split_targets(text: str) -> list[str]:
    """Comma-separated, with commas inside double quotes kept ("|/bin/prog a,b")."""
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    for c in text:
        if c == '"':
            quoted = not quoted
            cur.append(c)
        elif c == "," and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    out.append("".join(cur))
    return [t.strip() for t in out if t.strip()]


@dataclass
class AliasEntry:
    line: int
    name: str
    targets: list[Target]
    raw: str


def parse_aliases(text: str, path: str, plan: Plan) -> Iterator[AliasEntry]:
    """Logical entries of an aliases file. A line starting with a blank continues the entry just
    before it (Sendmail's readaliases); `#` lines and blank lines are comments."""
    entry: AliasEntry | None = None
    size = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            if entry is not None:
                yield entry
                entry = None
            continue
        if raw[0] in " \t":
            if entry is None:
                plan.skip(path, lineno, raw, "a continuation line with no alias before it")
                continue
            size += len(raw)
            if size > MAX_LOGICAL_LINE:
                plan.skip(path, lineno, raw, f"alias longer than {MAX_LOGICAL_LINE} characters: the rest is ignored")
                continue
            entry.targets.extend(Target(t, lineno) for t in _split_targets(raw))
            entry.raw += "\n" + raw
            continue
        if entry is not None:
            yield entry
            entry = None
        name, sep, rest = raw.partition(":")
        if not sep or not name.strip():
            plan.skip(path, lineno, raw, "no `name:` at the start of the line")
            continue
        size = len(raw)
        entry = AliasEntry(lineno, name.strip().strip('"'), [Target(t, lineno) for t in _split_targets(rest)], raw)
    if entry is not None:
        yield entry


def _target_address(text: str, primary: str) -> tuple[str | None, str | None]:
    """(address, None) or (None, why it cannot be mapped)."""
    t = text.strip()
    if len(t) >= 2 and t[0] == '"' and t[-1] == '"':
        t = t[1:-1].strip()
    if t.startswith("|"):
        return None, "a program target: mailcove does not run programs on delivery"
    if t.startswith("/"):
        return None, "a file target: mailcove delivers into mailboxes, not files"
    if t.lower().startswith(":include:"):
        return None, "an :include: list: put its addresses into the alias (`mailcove alias add`)"
    if t.lower().startswith("error:"):
        return None, ("an error: target: remove the alias, or refuse the address with "
                      "`mailcove relay add To:ADDR ERROR:...`")
    t = t.lstrip("\\")  # `\user`: Sendmail's "this user, not an alias of that name"
    if not t:
        return None, "empty target"
    if "@" not in t:
        t = f"{t}@{primary}"
    try:
        addr = Address.parse(t)
    except AddressError as exc:
        return None, f"not an address: {exc}"
    if addr.domain.startswith("["):
        return None, "address literals are not supported as alias targets"
    return f"{addr.local}@{addr.domain}", None


def plan_aliases(plan: Plan, path: str, text: str, primary: str | None) -> None:
    for entry in parse_aliases(text, path, plan):
        if primary is None:
            plan.skip(path, entry.line, entry.raw, "no local domain to put the alias in (local-host-names is "
                      "empty or missing; give --primary DOMAIN)")
            continue
        name = entry.name.lower()
        try:
            if "@" in name:
                raise AddressError("an alias name has no domain")
            source = Address.parse(f"{name}@{primary}")
        except AddressError as exc:
            plan.skip(path, entry.line, entry.name, f"not a usable alias name: {exc}")
            continue
        targets: list[str] = []
        if len(entry.targets) > MAX_TARGETS:
            plan.skip(path, entry.line, entry.name, f"more than {MAX_TARGETS} targets: only the first are imported")
        for tgt in entry.targets[:MAX_TARGETS]:
            addr, why = _target_address(tgt.text, primary)
            if addr is None:
                plan.skip(path, tgt.line, tgt.text, why or "cannot be mapped")
            elif addr not in targets:
                # The alias itself as a target (`a: \\a, copy@x`, keep a copy and forward) stays:
                # the directory delivers to the user a when an alias names it again.
                targets.append(addr)
        if not entry.targets:
            plan.skip(path, entry.line, entry.raw, "an alias with no targets")
        if targets == [source.key]:
            plan.skip(path, entry.line, entry.raw, "only the alias itself (Sendmail's \\user): mailcove delivers to "
                      "the user of that name anyway, nothing to import")
        elif targets:
            plan.aliases.append(AliasAdd(source.key, tuple(targets), Source(path, entry.line)))


# --- virtusertable -----------------------------------------------------------------------------


def _error_action(rhs: str) -> str | None:
    """Sendmail's `error:5.1.1:550 text` or `error:nouser text` as an access action, or None."""
    body = rhs[6:].strip()
    m = re.match(r"^(?P<dsn>[245]\.\d{1,3}\.\d{1,3}):(?P<code>[45]\d\d)\s*(?P<text>.*)$", body, re.S)
    if m:
        return f"ERROR:{m['dsn']}:{m['code']} {m['text']}".rstrip()
    m = re.match(r"^(?P<code>[45]\d\d)\s*(?P<text>.*)$", body, re.S)
    if m:
        return f"ERROR:{m['code']} {m['text']}".rstrip()
    word, _, text = body.partition(" ")
    named = _NAMED_ERRORS.get(word.lower())
    if named:
        return f"ERROR:{named[0]}:{named[1]} {text.strip() or 'User unknown'}"
    return None


def plan_virtusertable(plan: Plan, path: str, text: str, primary: str | None, local: set[str]) -> None:
    """`local` is every local domain planned so far; domains named here that are not in it are
    added as domains of their own (virtual domains: only the addresses listed here exist)."""
    for lineno, raw, lhs, rhs in _map_lines(text):
        src = Source(path, lineno)
        if not rhs:
            plan.skip(path, lineno, raw, "no target after the address")
            continue
        local_part, at, dom = lhs.rpartition("@")
        if not at:
            plan.skip(path, lineno, raw, "the key is not user@domain or @domain")
            continue
        try:
            domain = normalize_domain(dom)
        except AddressError:
            plan.skip(path, lineno, raw, "not a valid domain")
            continue
        if "+" in local_part:
            plan.skip(path, lineno, raw, "+detail keys: mailcove delivers a+x@d to a@d (or its alias) by itself")
            continue
        if rhs.lower().startswith("error:"):
            if not local_part:
                _ensure_domain(plan, domain, local, src)
                plan.skip(path, lineno, raw, "not needed: mailcove refuses unknown recipients at a local domain "
                          "(550 5.1.1) by default")
                continue
            action = _error_action(rhs)
            if action is None:
                plan.skip(path, lineno, raw, "an error: target mailcove cannot read (expected error:D.S.N:CODE text)")
                continue
            try:
                plan.access.append(AccessAdd(make_rule(Tag.TO, f"{local_part}@{domain}", action), src))
            except BadAccessRule as exc:
                plan.skip(path, lineno, raw, str(exc))
            continue
        if "%" in rhs:
            target_local, at2, target_dom = rhs.partition("@")
            if target_local != "%1" or (at2 and not target_dom):
                plan.skip(path, lineno, raw, "only %1 (the whole local part) can be mapped")
                continue
            if local_part:
                plan.skip(path, lineno, raw, "%1 needs a catch-all key (@domain)")
                continue
            try:
                other = normalize_domain(target_dom) if at2 else primary
            except AddressError:
                plan.skip(path, lineno, raw, "not a valid target domain")
                continue
            if other is None or other not in local:
                plan.skip(path, lineno, raw, "mailcove cannot send every address at a domain to the same local part "
                          "at a remote domain: add the addresses as aliases")
                continue
            if domain in local:
                plan.skip(path, lineno, raw, f"{domain} is already a local domain: make it an alias of {other} with "
                          f"`mailcove domain add {domain} --alias-of {other}` on a fresh directory")
                continue
            plan.domains.append(DomainAdd(domain, other, src))
            local.add(domain)
            continue
        if primary is None and "@" not in rhs:
            plan.skip(path, lineno, raw, "a local user target but no local domain (give --primary DOMAIN)")
            continue
        addr, why = _target_address(rhs, primary or "")
        if addr is None:
            plan.skip(path, lineno, raw, why or "cannot be mapped")
            continue
        _ensure_domain(plan, domain, local, src)
        source = f"{local_part.lower()}@{domain}" if local_part else f"@{domain}"
        plan.aliases.append(AliasAdd(source, (addr,), src))


def _ensure_domain(plan: Plan, domain: str, local: set[str], src: Source) -> None:
    if domain not in local:
        plan.domains.append(DomainAdd(domain, None, src))
        local.add(domain)


# --- mailertable -------------------------------------------------------------------------------


def parse_mailer_host(spec: str) -> tuple[str, int] | None:
    """`[host]`, `[host]:port`, `host`, `host:port`, `[IPv6:2001:db8::1]` -> (host, port); None for
    a list of several hosts (`host1:host2`)."""
    s = spec.strip()
    port = 25
    if s.startswith("["):
        host, _, rest = s[1:].partition("]")
        if rest:
            if not re.fullmatch(r":\d{1,5}", rest):
                return None
            port = int(rest[1:])
        if host.lower().startswith("ipv6:"):
            host = host[5:]
        return host, port
    head, sep, tail = s.partition(":")
    if sep:
        if not tail.isdigit():
            return None
        port = int(tail)
    return head, port


def plan_mailertable(plan: Plan, path: str, text: str) -> None:
    for lineno, raw, lhs, rhs in _map_lines(text):
        src = Source(path, lineno)
        mailer, sep, hostspec = rhs.partition(":")
        mailer = mailer.lower()
        if mailer == "error":
            if lhs == ".":
                plan.skip(path, lineno, raw, "refusing every remote domain: leave relaying off instead")
                continue
            action = _error_action(rhs)
            try:
                if action is None:
                    raise BadAccessRule("an error: target mailcove cannot read")
                plan.access.append(AccessAdd(make_rule(Tag.TO, lhs.lstrip("."), action), src))
            except BadAccessRule as exc:
                plan.skip(path, lineno, raw, str(exc))
            continue
        if mailer not in SMTP_MAILERS or not sep or not hostspec:
            plan.skip(path, lineno, raw, f"mailer {mailer or rhs!r}: only SMTP routes (esmtp, smtp, relay) map to "
                      "[transport]")
            continue
        hp = parse_mailer_host(hostspec)
        if hp is None or not hp[0] or not 0 < hp[1] < 65536:
            plan.skip(path, lineno, raw, "several hosts or a bad host: [transport] takes one HOST:PORT")
            continue
        host, port = hp
        value = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if lhs == ".":
            # Sendmail's default route: every remote domain goes to one host, i.e. a smart host.
            # Sendmail sends to it like to any MX: TLS when offered, no certificate check.
            note = "mailertable `.`: every remote domain"
            plan.config.append(ConfigSet(("relayhost", "host"), host, src, note))
            plan.config.append(ConfigSet(("relayhost", "port"), port, src, note))
            plan.config.append(ConfigSet(("relayhost", "tls"), "may", src, note))
            plan.config.append(ConfigSet(("relayhost", "tls_verify"), False, src, note))
            continue
        dot = "." if lhs.startswith(".") else ""
        try:
            key = dot + normalize_domain(lhs.lstrip("."))
        except AddressError:
            plan.skip(path, lineno, raw, "not a valid domain")
            continue
        note = "" if hostspec.startswith("[") else (
            "Sendmail looks up the MX of an unbracketed host; mailcove connects to it"
        )
        plan.config.append(ConfigSet(("transport", key), value, src, note))


# --- the whole directory -----------------------------------------------------------------------


# `Dj...`, `Dw...`: a one-letter macro defined in sendmail.cf (`D{name}value` is a long name).
_MACRO = re.compile(r"^D([A-Za-z])(.*)$")


def plan_hostname(plan: Plan, path: str, text: str) -> None:
    """`hostname` from sendmail.cf: $j (Dj, the official name Sendmail greets with), else $w (Dw)
    when it is fully qualified. $w and $m in the value are expanded from the file's own Dw/Dm;
    a value with any other macro is only known to Sendmail at run time and is reported."""
    macros: dict[str, tuple[int, str]] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        m = _MACRO.match(line.rstrip())
        if m and m.group(1) in "wjm":
            macros[m.group(1)] = (lineno, m.group(2).strip())  # the last definition wins, as in Sendmail
    for letter, what in (("j", "Dj: Sendmail's official host name"), ("w", "Dw: Sendmail's host name")):
        if letter not in macros:
            continue
        lineno, value = macros[letter]
        for ref in "wm":
            if ref != letter and ref in macros:
                value = value.replace(f"${ref}", macros[ref][1])
        try:
            name = normalize_domain(value) if "$" not in value else ""
        except AddressError:
            name = ""
        if not name or "." not in name:
            plan.skip(path, lineno, f"D{letter}{macros[letter][1]}",
                      "not a fully qualified host name here (Sendmail fills it in at run time)")
            continue
        plan.config.append(ConfigSet(("hostname",), name, Source(path, lineno), f"{what}, the name the server "
                                     "greets with"))
        return


def default_aliases_path(mail_dir: str) -> str:
    return os.path.normpath(os.path.join(mail_dir, "..", "aliases"))


def plan_sendmail(
    mail_dir: str, files: Files, *, aliases_path: str | None = None, primary: str | None = None
) -> Plan:
    """Read what exists of local-host-names, access, aliases, virtusertable, mailertable and
    relay-domains. A missing file is not an error (most installations have only some)."""
    plan = Plan("sendmail")
    if primary is not None:
        primary = normalize_domain(primary)

    def read(path: str) -> str | None:
        try:
            text = files.read(path)
        except FileProblem as exc:
            plan.skip(path, 0, "", str(exc))
            return None
        if text is not None:
            plan.files.append(path)
        return text

    def at(name: str) -> str:
        return os.path.join(mail_dir, name)

    lhn = read(at("local-host-names"))
    chosen = plan_local_host_names(plan, at("local-host-names"), lhn or "", primary)
    if chosen is None and primary is not None:
        chosen = primary
    local = {d.name for d in plan.domains}
    access = read(at("access"))
    if access is not None:
        plan_access(plan, at("access"), access)
    apath = aliases_path or default_aliases_path(mail_dir)
    aliases = read(apath)
    if aliases is not None:
        plan_aliases(plan, apath, aliases, chosen)
    vut = read(at("virtusertable"))
    if vut is not None:
        plan_virtusertable(plan, at("virtusertable"), vut, chosen, local)
    mt = read(at("mailertable"))
    if mt is not None:
        plan_mailertable(plan, at("mailertable"), mt)
    rd = read(at("relay-domains"))
    if rd is not None:
        plan_relay_domains(plan, at("relay-domains"), rd)
    cf = read(at("sendmail.cf"))
    if cf is not None:
        plan_hostname(plan, at("sendmail.cf"), cf)
    for name, why in NOT_READ.items():
        try:
            exists = files.read(at(name)) is not None
        except FileProblem:
            exists = True
        if exists:
            plan.skip(at(name), 0, "", why)
    return plan
