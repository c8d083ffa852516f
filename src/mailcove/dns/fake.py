"""A Resolver from a dict, for unit tests of mail-authentication logic only (interop and e2e
tests use a real dnsmasq). Keys are (name, type); a value of TempError() simulates a timeout."""

from __future__ import annotations

from typing import Any

from mailcove.dns import NotFound, TempError


class FakeResolver:
    def __init__(self, records: dict[tuple[str, str], Any] | None = None) -> None:
        self.records: dict[tuple[str, str], Any] = {}
        for (name, rdtype), value in (records or {}).items():
            self.add(name, rdtype, value)
        self.queries: list[tuple[str, str]] = []

    def add(self, name: str, rdtype: str, value: Any) -> None:
        self.records[(name.lower().rstrip("."), rdtype.upper())] = value

    def _get(self, name: str, rdtype: str) -> list[Any]:
        key = (name.lower().rstrip("."), rdtype)
        self.queries.append(key)
        value = self.records.get(key)
        if isinstance(value, Exception):
            raise value
        if value is None:
            if any(n == key[0] for n, _ in self.records):
                return []
            raise NotFound(name)
        return list(value) if isinstance(value, list | tuple) else [value]

    async def mx(self, name: str) -> list[tuple[int, str]]:
        return self._get(name, "MX")

    async def a(self, name: str) -> list[str]:
        return self._get(name, "A")

    async def aaaa(self, name: str) -> list[str]:
        return self._get(name, "AAAA")

    async def txt(self, name: str) -> list[bytes]:
        return [v.encode() if isinstance(v, str) else v for v in self._get(name, "TXT")]

    async def ptr(self, address: str) -> list[str]:
        return self._get(address, "PTR")


__all__ = ["FakeResolver", "NotFound", "TempError"]
