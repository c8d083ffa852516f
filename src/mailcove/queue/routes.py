"""Where mail for a domain goes: [transport] entry, else [relayhost], else the domain's MX hosts
(RFC 5321 section 5.1, with RFC 7505 null MX)."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from pathlib import Path

from mailcove.config.settings import Settings
from mailcove.dns import NotFound, Resolver, TempError


class RouteError(Exception):
    def __init__(self, text: str, *, permanent: bool, status: str) -> None:
        super().__init__(text)
        self.text = text
        self.permanent = permanent
        self.status = status


@dataclass(frozen=True, slots=True)
class Route:
    key: str  # the destination, for per-destination concurrency and connection reuse
    hosts: tuple[tuple[str, int], ...]  # tried in order
    tls: str  # "may" | "starttls" | "implicit" | "none"
    verify: bool
    username: str = ""
    password: str = ""


def parse_hostport(text: str, default_port: int) -> tuple[str, int]:
    """"HOST:PORT", "HOST", "[V6]:PORT", "[V6]" -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, default_port


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class Router:
    def __init__(self, settings: Settings, resolver: Resolver) -> None:
        self.settings = settings
        self.resolver = resolver
        self.transport = {k.lower().rstrip("."): v for k, v in settings.transport.items()}
        self._relay_password: str | None = None

    def _password(self) -> str:
        rh = self.settings.relayhost
        if self._relay_password is None:
            if rh.password_file is None:
                self._relay_password = ""
            else:
                path = Path(rh.password_file)
                if not path.is_absolute() and self.settings.source not in ("<defaults>", ""):
                    path = Path(self.settings.source).parent / path
                lines = path.read_text().splitlines()
                self._relay_password = lines[0] if lines else ""
        return self._relay_password

    async def route(self, domain: str) -> Route:
        q = self.settings.queue
        domain = domain.lower().rstrip(".")
        starttls = "may" if q.starttls else "none"
        entry = self.transport.get(domain)
        if entry is None:
            # a parent-domain entry ".example.org" covers its subdomains, as in mailertable
            parts = domain.split(".")
            for i in range(1, len(parts)):
                entry = self.transport.get("." + ".".join(parts[i:]))
                if entry is not None:
                    break
        if entry is not None:
            host, port = parse_hostport(entry, q.mx_port)
            return Route(f"transport:{host}:{port}", ((host, port),), starttls, False)
        rh = self.settings.relayhost
        if rh.host:
            try:
                password = self._password() if rh.username else ""
            except OSError as exc:
                raise RouteError(f"[relayhost] password_file: {exc}", permanent=False, status="4.3.5") from None
            return Route(f"relay:{rh.host}:{rh.port}", ((rh.host, rh.port),), rh.tls, rh.tls_verify,
                         rh.username, password)
        if domain.startswith("[") and domain.endswith("]"):  # an address literal, RFC 5321 4.1.3
            literal = domain[1:-1].removeprefix("ipv6:").removeprefix("IPv6:")
            return Route(f"mx:{domain}", ((literal, q.mx_port),), starttls, False)
        try:
            mxs = await self.resolver.mx(domain)
        except NotFound:
            raise RouteError(f"{domain}: domain not found", permanent=True, status="5.1.2") from None
        except TempError as exc:
            raise RouteError(f"{domain}: MX lookup failed: {exc}", permanent=False, status="4.4.3") from None
        if any(host in ("", ".") for _, host in mxs):
            # RFC 7505: a null MX says the domain takes no mail at all
            raise RouteError(f"{domain} accepts no mail (null MX)", permanent=True, status="5.1.10")
        if not mxs:
            # RFC 5321 5.1: no MX records, the domain itself is the implicit MX
            return Route(f"mx:{domain}", ((domain, q.mx_port),), starttls, False)
        by_pref: dict[int, list[str]] = {}
        for pref, host in mxs:
            by_pref.setdefault(pref, []).append(host)
        hosts: list[tuple[str, int]] = []
        for pref in sorted(by_pref):
            same = by_pref[pref]
            random.shuffle(same)  # RFC 5321 5.1: spread load over equal preferences
            hosts.extend((h, q.mx_port) for h in same)
        return Route(f"mx:{domain}", tuple(hosts), starttls, False)

    async def addresses(self, host: str) -> list[str]:
        """A host's addresses, IPv6 first when both exist. NotFound / TempError propagate."""
        if is_ip(host):
            return [host]
        v4: list[str] = []
        v6: list[str] = []
        errors: list[Exception] = []
        for fn, out in ((self.resolver.aaaa, v6), (self.resolver.a, v4)):
            try:
                out.extend(await fn(host))
            except (NotFound, TempError) as exc:
                errors.append(exc)
        if not v4 and not v6 and errors:
            if all(isinstance(e, NotFound) for e in errors):
                raise NotFound(host)
            raise TempError(f"{host}: address lookup failed")
        return v6 + v4
