"""DNS for the outbound queue and the inbound checks: a small Resolver protocol, the dnspython
implementation (honouring `[dns] nameservers = ["HOST:PORT"]`), and a fake for unit tests of the
mail-authentication logic (interop tests use a real dnsmasq instead).

Every lookup either returns records, raises NotFound (NXDOMAIN: the name does not exist), returns
[] (the name exists but has no record of that type), or raises TempError (timeout, SERVFAIL):
the three outcomes RFC 5321 section 5 and RFC 7208 section 5 tell apart."""

from __future__ import annotations

from typing import Protocol


class DnsError(Exception):
    pass


class NotFound(DnsError):
    """NXDOMAIN: the name does not exist."""


class TempError(DnsError):
    """No usable answer now (timeout, SERVFAIL, refused): try again later."""


class Resolver(Protocol):
    async def mx(self, name: str) -> list[tuple[int, str]]:
        """(preference, exchange) pairs; the exchange without its trailing dot ("" for a null MX)."""
    async def a(self, name: str) -> list[str]: ...
    async def aaaa(self, name: str) -> list[str]: ...
    async def txt(self, name: str) -> list[bytes]:
        """Each record's strings joined (RFC 7208 3.3, RFC 6376 3.6.2.2)."""
    async def ptr(self, address: str) -> list[str]: ...


def parse_nameserver(text: str) -> tuple[str, int]:
    """"HOST:PORT", "HOST", "[V6]:PORT" or a bare IPv6 address -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, 53


def make_resolver(nameservers: list[str], timeout: float = 5.0) -> Resolver:
    from mailcove.dns.dnspython import DnsPythonResolver

    return DnsPythonResolver(nameservers, timeout)
