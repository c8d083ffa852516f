"""SPF (RFC 7208): check_host() over a Resolver.

Hand-written rather than pyspf: pyspf does its own DNS (it cannot be given our Resolver, so
dnsmasq in tests and `[dns] nameservers` would not apply) and is synchronous. This covers the
whole mechanism set (all, include, a, mx, ptr, ip4, ip6, exists; redirect and exp modifiers are
read, exp is not fetched), the common macros, the 10-lookup and 2-void-lookup limits."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mailcove.dns import NotFound, Resolver, TempError

MAX_LOOKUPS = 10  # RFC 7208 4.6.4
MAX_VOID = 2
MAX_MX = 10


@dataclass(frozen=True, slots=True)
class SpfResult:
    result: str  # pass | fail | softfail | neutral | none | temperror | permerror
    domain: str
    reason: str = ""


class _PermError(Exception):
    pass


class _TempError(Exception):
    pass


_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_MECH = re.compile(r"^([+\-~?]?)(all|include|a|mx|ptr|ip4|ip6|exists)(?::(.*)|(/.*))?$", re.I)
_MOD = re.compile(r"^([a-z][a-z0-9_\-.]*)=(.*)$", re.I)


class _Check:
    def __init__(self, resolver: Resolver, ip: str, sender: str, helo: str) -> None:
        self.r = resolver
        self.ip = ipaddress.ip_address(ip)
        if isinstance(self.ip, ipaddress.IPv6Address) and self.ip.ipv4_mapped is not None:
            self.ip = self.ip.ipv4_mapped
        self.sender = sender
        self.helo = helo
        self.lookups = 0
        self.void = 0

    def _count(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise _PermError("more than 10 DNS lookups")

    async def _q(self, lookup: Callable[[str], Awaitable[list[Any]]], name: str) -> list[Any]:
        try:
            out = await lookup(name)
        except NotFound:
            out = []
        except TempError as exc:
            raise _TempError(str(exc)) from None
        if not out:
            self.void += 1
            if self.void > MAX_VOID:
                raise _PermError("more than 2 void lookups")
        return out

    async def record(self, domain: str) -> str | None:
        try:
            txts = await self.r.txt(domain)
        except NotFound:
            return None
        except TempError as exc:
            raise _TempError(str(exc)) from None
        spf = [t for t in txts if t.lower() == b"v=spf1" or t.lower().startswith(b"v=spf1 ")]
        if len(spf) > 1:
            raise _PermError(f"{domain} has several SPF records")
        return spf[0].decode("ascii", "replace") if spf else None

    def expand(self, spec: str, domain: str) -> str:
        local, _, sdomain = self.sender.rpartition("@")
        values = {"s": self.sender, "l": local or "postmaster", "o": sdomain or self.helo, "d": domain,
                  "i": str(self.ip) if self.ip.version == 4 else ".".join(self.ip.exploded.replace(":", "")),
                  "h": self.helo, "v": "in-addr" if self.ip.version == 4 else "ip6", "p": "unknown"}

        def sub(m: re.Match[str]) -> str:
            body = m.group(1)
            if body is None:
                return {"%%": "%", "%_": " ", "%-": "%20"}[m.group(0)]
            mm = re.fullmatch(r"([slodiphv])(\d*)(r?)([.\-+,/_=]*)", body, re.I)
            if mm is None:
                raise _PermError(f"bad macro %{{{body}}}")
            value = values[mm.group(1).lower()]
            delims = mm.group(4) or "."
            parts = re.split("[" + re.escape(delims) + "]", value)
            if mm.group(3):
                parts.reverse()
            if mm.group(2):
                parts = parts[-int(mm.group(2)):]
            return ".".join(parts)

        return re.sub(r"%\{([^}]*)\}|%%|%_|%-", sub, spec)

    def _cidr(self, arg: str | None, default_domain: str) -> tuple[str, int, int]:
        v4, v6 = 32, 128
        name = default_domain
        if arg:
            m = re.fullmatch(r"([^/]*)(?:/(\d+))?(?://(\d+))?", arg)
            if m is None:
                raise _PermError(f"bad argument {arg}")
            if m.group(1):
                name = self.expand(m.group(1), default_domain)
            v4 = int(m.group(2)) if m.group(2) else 32
            v6 = int(m.group(3)) if m.group(3) else 128
        return name, v4, v6

    def _in(self, addresses: list[str], v4: int, v6: int) -> bool:
        for a in addresses:
            try:
                net = ipaddress.ip_network(f"{a}/{v4 if ':' not in a else v6}", strict=False)
            except ValueError:
                continue
            if self.ip.version == net.version and self.ip in net:
                return True
        return False

    async def _addresses(self, name: str) -> list[str]:
        return await self._q(self.r.a if self.ip.version == 4 else self.r.aaaa, name)

    async def check(self, domain: str, depth: int = 0) -> str:
        if depth > MAX_LOOKUPS:
            raise _PermError("include loop")
        text = await self.record(domain)
        if text is None:
            return "none"
        terms = text.split()[1:]
        redirect = None
        for term in terms:
            m = _MECH.match(term)
            if m is None:
                mod = _MOD.match(term)
                if mod is None:
                    raise _PermError(f"unknown term {term!r}")
                if mod.group(1).lower() == "redirect":
                    if redirect is not None:
                        raise _PermError("two redirect modifiers")
                    redirect = mod.group(2)
                continue
            qual = _QUALIFIERS[m.group(1) or "+"]
            mech, arg = m.group(2).lower(), m.group(3) if m.group(3) is not None else m.group(4)
            if await self._match(mech, arg, domain, term, depth):
                return qual
        if redirect is not None:
            self._count()
            target = self.expand(redirect, domain)
            result = await self.check(target, depth + 1)
            if result == "none":
                raise _PermError(f"redirect to {target} without SPF record")
            return result
        return "neutral"

    async def _match(self, mech: str, arg: str | None, domain: str, term: str, depth: int) -> bool:
        if mech == "all":
            return True
        if mech in ("ip4", "ip6"):
            if not arg:
                raise _PermError(f"{term}: address missing")
            try:
                net = ipaddress.ip_network(arg, strict=False)
            except ValueError:
                raise _PermError(f"{term}: bad network") from None
            return self.ip.version == net.version and self.ip in net
        self._count()
        if mech == "include":
            if not arg:
                raise _PermError("include without domain")
            result = await self.check(self.expand(arg, domain), depth + 1)
            if result == "pass":
                return True
            if result in ("temperror",):
                raise _TempError("include")
            if result in ("permerror", "none"):
                raise _PermError(f"include:{arg} has no usable SPF record")
            return False
        if mech == "a":
            name, v4, v6 = self._cidr(arg, domain)
            return self._in(await self._addresses(name), v4, v6)
        if mech == "mx":
            name, v4, v6 = self._cidr(arg, domain)
            mxs = await self._q(self.r.mx, name)
            if len(mxs) > MAX_MX:
                raise _PermError("more than 10 MX records")
            for _pref, host in mxs:
                if host and self._in(await self._addresses(host), v4, v6):
                    return True
            return False
        if mech == "exists":
            if not arg:
                raise _PermError("exists without domain")
            return bool(await self._q(self.r.a, self.expand(arg, domain)))
        if mech == "ptr":
            # RFC 7208 5.5 says "do not use"; validated names under the target domain match
            target = self.expand(arg, domain) if arg else domain
            try:
                names = await self.r.ptr(str(self.ip))
            except (NotFound, TempError):
                return False
            for n in names[:10]:
                if (n == target or n.endswith("." + target)) and str(self.ip) in await self._addresses(n):
                    return True
            return False
        raise _PermError(f"unknown mechanism {mech}")


async def check_host(resolver: Resolver, ip: str, sender: str, helo: str) -> SpfResult:
    """SPF for the MAIL FROM domain, or for the HELO name when the reverse-path is null."""
    domain = sender.rpartition("@")[2] if "@" in sender else helo
    if not sender:
        sender = f"postmaster@{helo}"
    domain = domain.lower().rstrip(".")
    if not domain or "." not in domain:
        return SpfResult("none", domain, "no domain")
    c = _Check(resolver, ip, sender, helo)
    try:
        return SpfResult(await c.check(domain), domain)
    except _PermError as exc:
        return SpfResult("permerror", domain, str(exc))
    except _TempError as exc:
        return SpfResult("temperror", domain, str(exc))
