"""Sendmail access-map semantics, without I/O: parsing patterns and actions, and the lookup order.

Lookup order follows Sendmail's proto.m4 (Basic_check_relay, LookUpDomain, LookUpAddress):
- Connect: the client's (forward-confirmed) host name first, most specific domain first
  ("mx1.hamap.local", then "hamap.local", then "local"); then its IP, longest prefix first. At each
  step a tagged entry (`Connect:x`) is tried before an untagged one (`x`), so a more specific
  untagged entry beats a less specific tagged one, exactly as in Sendmail.
- From/To: the full address, then (for `a+tag@d`) the address without its detail, then the domain
  and its parents, then the local part alone (`user@`). Tagged before untagged at each step.
Keys are case-insensitive, as with makemap's default case folding.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from mailcove.core.address import AddressError, normalize_domain
from mailcove.directory.api import AccessRule, Action, Tag
from mailcove.directory.errors import BadAccessRule

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_TAGS = {"connect": Tag.CONNECT, "from": Tag.FROM, "to": Tag.TO}
# Sendmail tags with no mailcove meaning (yet). Named so `access import` can say which tag it was.
_OTHER_TAGS = re.compile(r"^[A-Za-z][A-Za-z_]*$")
_DOTTED = re.compile(r"^\d{1,3}(\.\d{1,3}){0,3}$")
_ERROR = re.compile(r"^(?:(?P<dsn>[245]\.\d{1,3}\.\d{1,3}):)?(?P<code>[45]\d\d)(?:[ -](?P<text>.*))?$", re.S)


# --- patterns --------------------------------------------------------------------------------------


def parse_network(pattern: str) -> IPNetwork | None:
    """An IP pattern (exact, dotted prefix, CIDR, netmask, IPv6 with or without `IPv6:`), or None
    when the text is not an IP pattern at all. Raises BadAccessRule for a malformed one."""
    p = pattern.strip()
    if p.lower().startswith("ipv6:"):
        p = p[5:]
    if p.startswith("[") and p.endswith("]"):
        p = p[1:-1]
    try:
        if "/" in p:
            # strict=False: "10.0.0.5/24" means the network around it, as a netmask table would.
            return ipaddress.ip_network(p, strict=False)
        addr = ipaddress.ip_address(p)
        return ipaddress.ip_network(addr)
    except ValueError as exc:
        if "/" in p:
            raise BadAccessRule(f"bad network {pattern!r}: {exc}") from None
    if _DOTTED.match(p):
        octets = p.split(".")
        if any(int(o) > 255 for o in octets):
            raise BadAccessRule(f"bad IPv4 prefix {pattern!r}")
        full = octets + ["0"] * (4 - len(octets))
        return ipaddress.ip_network(f"{'.'.join(full)}/{8 * len(octets)}")
    if ":" in p and "::" not in p and re.fullmatch(r"[0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,6}", p):
        # Sendmail's IPv6 prefix form: whole hextets, e.g. "IPv6:2001:db8" = 2001:db8::/32.
        hextets = p.split(":")
        full = hextets + ["0"] * (8 - len(hextets))
        return ipaddress.ip_network(f"{':'.join(full)}/{16 * len(hextets)}")
    return None


def _domain(text: str, original: str) -> str:
    try:
        return normalize_domain(text.lstrip("."))
    except AddressError:
        raise BadAccessRule(f"not an IP, network, host name or address: {original!r}") from None


def normalize_pattern(tag: Tag, pattern: str) -> str:
    """The identity key of a pattern: a network ("10.0.0.0/24"), a domain, "local@domain",
    "local@" or, for the null sender, "<>"."""
    p = pattern.strip()
    if not p:
        raise BadAccessRule("empty pattern")
    if tag in (Tag.CONNECT, Tag.ANY):
        net = parse_network(p)
        if net is not None:
            return str(net)
        if tag is Tag.CONNECT:
            if "@" in p:
                raise BadAccessRule(f"Connect: rules take an IP, network or host name, not an address: {p!r}")
            return _domain(p, pattern)
    if p == "<>":
        if tag in (Tag.FROM, Tag.ANY):
            return "<>"
        raise BadAccessRule("<> (the null sender) only makes sense in From: rules")
    if "@" in p:
        local, _, dom = p.rpartition("@")
        if not local or any(c in " \t<>(),;:\\\"" for c in local):
            raise BadAccessRule(f"bad address pattern {pattern!r}")
        if not dom:
            return f"{local.lower()}@"
        return f"{local.lower()}@{_domain(dom, pattern)}"
    return _domain(p, pattern)


def split_tag(lhs: str) -> tuple[Tag, str]:
    """`Connect:10.0.0` -> (CONNECT, "10.0.0"). Untagged entries give Tag.ANY. Raises for a
    Sendmail tag mailcove does not implement (Spam:, GreetPause:, ...)."""
    head, sep, rest = lhs.partition(":")
    if not sep:
        return Tag.ANY, lhs
    low = head.lower()
    if low in _TAGS:
        return _TAGS[low], rest
    if low != "ipv6" and _OTHER_TAGS.match(head):
        raise BadAccessRule(f"unsupported tag {head}: (mailcove implements Connect:, From: and To:)")
    return Tag.ANY, lhs


def parse_action(text: str) -> tuple[Action, int | None, str | None, str | None]:
    """A right-hand side: RELAY, OK, REJECT, DISCARD, or ERROR:[D.S.N:]### text (quoted or not).
    ERROR becomes REJECT carrying its own reply; a 4xx code makes it a temporary refusal."""
    t = text.strip()
    up = t.upper()
    if up in Action.__members__:
        return Action(up), None, None, None
    if up.startswith("ERROR:"):
        body = t[6:].strip()
        if len(body) >= 2 and body[0] == '"' and body[-1] == '"':
            body = body[1:-1]
        m = _ERROR.match(body)
        if not m:
            raise BadAccessRule(f"cannot read {t!r}: expected ERROR:[D.S.N:]### text with a 4xx or 5xx code")
        code = int(m["code"])
        dsn = m["dsn"]
        if dsn and dsn[0] != str(code)[0]:
            raise BadAccessRule(f"status {dsn} does not agree with reply code {code} in {t!r}")
        return Action.REJECT, code, dsn, (m["text"] or "").strip() or None
    word = up.split(":", 1)[0]
    raise BadAccessRule(f"unsupported action {word!r} (mailcove implements RELAY, OK, REJECT, DISCARD and ERROR:)")


def make_rule(tag: Tag, pattern: str, action_text: str) -> AccessRule:
    action, code, dsn, text = parse_action(action_text)
    key = normalize_pattern(tag, pattern)
    return AccessRule(tag, key, pattern.strip(), action, code, dsn, text)


def parse_rule_text(lhs: str, action_text: str) -> AccessRule:
    """`Connect:1.2.3.4`, `DISCARD` -> AccessRule."""
    tag, pattern = split_tag(lhs.strip())
    return make_rule(tag, pattern, action_text)


@dataclass(frozen=True, slots=True)
class AccessLine:
    lineno: int
    text: str
    rule: AccessRule | None  # None: the line could not be mapped
    problem: str | None


def parse_access_file(text: str) -> Iterator[AccessLine]:
    """Every non-blank, non-comment line of a Sendmail access file, mapped or with its problem."""
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            yield AccessLine(lineno, raw, None, "no action after the pattern")
            continue
        lhs, rhs = parts
        words = rhs.split(None, 1)
        if words[0].upper() in Action.__members__:
            # makemap keeps everything after the key as the value; allow a trailing `# comment`
            # after a plain action, but refuse other trailing words rather than guess.
            if len(words) == 2 and not words[1].startswith("#"):
                yield AccessLine(lineno, raw, None, f"unexpected text after the action: {words[1]!r}")
                continue
            rhs = words[0]
        try:
            yield AccessLine(lineno, raw, parse_rule_text(lhs, rhs), None)
        except BadAccessRule as exc:
            yield AccessLine(lineno, raw, None, str(exc))


# --- matching --------------------------------------------------------------------------------------


def _domain_suffixes(domain: str) -> Iterator[str]:
    labels = domain.split(".")
    for i in range(len(labels)):
        yield ".".join(labels[i:])


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    t = text.strip()
    if t.lower().startswith("ipv6:"):
        t = t[5:]
    t = t.strip("[]")
    if "%" in t:
        t = t.split("%", 1)[0]  # scope id of a link-local address
    try:
        ip = ipaddress.ip_address(t)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d
    return ip


class AccessTable:
    """The compiled rules of one snapshot. Networks are indexed by (version, prefix length) so a
    lookup costs one dict probe per distinct prefix length, however many rules there are."""

    def __init__(self, rules: Iterable[AccessRule]) -> None:
        self.rules: list[AccessRule] = list(rules)
        self._names: dict[tuple[Tag, str], AccessRule] = {}
        self._nets: dict[tuple[Tag, int, int], dict[int, AccessRule]] = {}
        self._prefixlens: dict[int, list[int]] = {4: [], 6: []}
        for r in self.rules:
            if "/" in r.key:
                net = ipaddress.ip_network(r.key)
                self._nets.setdefault((r.tag, net.version, net.prefixlen), {})[int(net.network_address)] = r
                if net.prefixlen not in self._prefixlens[net.version]:
                    self._prefixlens[net.version].append(net.prefixlen)
            else:
                self._names[(r.tag, r.key)] = r
        for v in self._prefixlens.values():
            v.sort(reverse=True)

    def _name(self, tag: Tag, key: str) -> AccessRule | None:
        return self._names.get((tag, key)) or self._names.get((Tag.ANY, key))

    def match_ip(self, ip: str) -> AccessRule | None:
        addr = _ip(ip)
        if addr is None:
            return None
        bits = 32 if addr.version == 4 else 128
        value = int(addr)
        for plen in self._prefixlens[addr.version]:
            masked = value >> (bits - plen) << (bits - plen) if plen else 0
            for tag in (Tag.CONNECT, Tag.ANY):
                table = self._nets.get((tag, addr.version, plen))
                if table is not None and masked in table:
                    return table[masked]
        return None

    def match_hostname(self, hostname: str) -> AccessRule | None:
        try:
            name = normalize_domain(hostname)
        except AddressError:
            return None
        for suffix in _domain_suffixes(name):
            rule = self._name(Tag.CONNECT, suffix)
            if rule is not None:
                return rule
        return None

    def match_connect(self, ip: str, hostname: str | None) -> AccessRule | None:
        if hostname:
            rule = self.match_hostname(hostname)
            if rule is not None:
                return rule
        return self.match_ip(ip)

    def match_address(self, tag: Tag, address: str) -> AccessRule | None:
        a = address.strip()
        if a.startswith("<") and a.endswith(">"):
            a = a[1:-1]
        if not a:
            return self._name(tag, "<>")
        local, sep, dom = a.rpartition("@")
        if not sep:
            local, dom = a, ""
        local = local.lower()
        try:
            dom = normalize_domain(dom) if dom else ""
        except AddressError:
            return None
        candidates: list[str] = []
        if dom:
            candidates.append(f"{local}@{dom}")
            if "+" in local:
                candidates.append(f"{local.split('+', 1)[0]}@{dom}")
            candidates.extend(_domain_suffixes(dom))
        candidates.append(f"{local}@")
        if "+" in local:
            candidates.append(f"{local.split('+', 1)[0]}@")
        for key in candidates:
            rule = self._name(tag, key)
            if rule is not None:
                return rule
        return None


def is_localhost(ip: str) -> bool:
    """127.0.0.1 or ::1 (also IPv4-mapped): what relay_from_localhost trusts."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0].strip("[]"))
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return str(addr) in ("127.0.0.1", "::1")
