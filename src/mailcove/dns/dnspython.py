"""The Resolver over dnspython's asyncio resolver."""

from __future__ import annotations

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver
import dns.reversename

from mailcove.dns import NotFound, TempError, parse_nameserver


class DnsPythonResolver:
    def __init__(self, nameservers: list[str], timeout: float = 5.0) -> None:
        if nameservers:
            r = dns.asyncresolver.Resolver(configure=False)
            servers = []
            for text in nameservers:
                host, port = parse_nameserver(text)
                servers.append(dns.nameserver.Do53Nameserver(host, port))
            r.nameservers = servers
        else:
            try:
                r = dns.asyncresolver.Resolver()
            except (dns.resolver.NoResolverConfiguration, OSError):
                # no /etc/resolv.conf (a minimal container): serve anyway; every lookup is then
                # a temporary failure, logged by whoever asked, until [dns] nameservers is set
                r = dns.asyncresolver.Resolver(configure=False)
                r.nameservers = ["127.0.0.1"]
        r.lifetime = timeout
        r.timeout = min(timeout, 2.0)
        # A cache: the queue asks for the same MX and A records for every message to a domain.
        r.cache = dns.resolver.LRUCache(10000)
        self._r = r

    async def _query(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        try:
            answer = await self._r.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            raise NotFound(f"{name}: no such domain") from None
        except dns.resolver.NoAnswer:
            return []
        except dns.resolver.NoNameservers as exc:
            raise TempError(f"{name} {rdtype}: no server answered ({exc})") from None
        except (dns.exception.Timeout, dns.resolver.LifetimeTimeout):
            raise TempError(f"{name} {rdtype}: timed out") from None
        except dns.exception.DNSException as exc:
            raise TempError(f"{name} {rdtype}: {exc}") from None
        return list(answer)

    async def mx(self, name: str) -> list[tuple[int, str]]:
        rows = await self._query(name, "MX")
        return [(r.preference, r.exchange.to_text(omit_final_dot=True)) for r in rows]  # type: ignore[attr-defined]

    async def a(self, name: str) -> list[str]:
        return [r.address for r in await self._query(name, "A")]  # type: ignore[attr-defined]

    async def aaaa(self, name: str) -> list[str]:
        return [r.address for r in await self._query(name, "AAAA")]  # type: ignore[attr-defined]

    async def txt(self, name: str) -> list[bytes]:
        return [b"".join(r.strings) for r in await self._query(name, "TXT")]  # type: ignore[attr-defined]

    async def ptr(self, address: str) -> list[str]:
        rev = dns.reversename.from_address(address).to_text()
        return [r.target.to_text(omit_final_dot=True) for r in await self._query(rev, "PTR")]  # type: ignore[attr-defined]
