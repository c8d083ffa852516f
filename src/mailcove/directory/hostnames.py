"""Forward-confirmed reverse names of clients, through the system resolver.

`Connect:hamap.local RELAY` must not trust whatever PTR record a client's network owner publishes:
like Sendmail (and Postfix's "reverse_client_name" vs "client_name"), a name counts only when it
resolves back to the client's address. The system resolver is used on purpose (not dnspython), so
/etc/hosts counts, as it does for Sendmail; the seed's `rocky9-3` lives there.

The libc calls block, so they run in a small dedicated thread pool; results are cached briefly so a
connection storm from one address costs one lookup.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from mailcove.core.clock import SYSTEM_CLOCK, Clock


def _lookup(ip: str) -> str | None:
    try:
        name, _aliases, _addrs = socket.gethostbyaddr(ip)
    except (OSError, UnicodeError):
        return None
    name = name.rstrip(".").lower()
    return name if _forward_has(name, ip) else None


def _forward_has(name: str, ip: str) -> bool:
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    want = ipaddress.ip_address(ip)
    for info in infos:
        addr = str(info[4][0]).split("%", 1)[0]
        try:
            if ipaddress.ip_address(addr) == want:
                return True
        except ValueError:
            continue
    return False


class HostnameResolver:
    def __init__(
        self,
        *,
        ttl: float = 60.0,
        negative_ttl: float = 30.0,
        timeout: float = 5.0,
        max_entries: int = 10_000,
        workers: int = 2,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.timeout = timeout
        self.max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, tuple[str | None, float]] = OrderedDict()
        self._confirmed: OrderedDict[tuple[str, str], tuple[bool, float]] = OrderedDict()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mailcove-dns")

    def _get(self, cache: OrderedDict, key: object) -> tuple[bool, object]:
        hit = cache.get(key)
        if hit is not None and hit[1] > self._clock.monotonic():
            cache.move_to_end(key)
            return True, hit[0]
        return False, None

    def _put(self, cache: OrderedDict, key: object, value: object, ok: bool) -> None:
        cache[key] = (value, self._clock.monotonic() + (self.ttl if ok else self.negative_ttl))
        cache.move_to_end(key)
        while len(cache) > self.max_entries:
            cache.popitem(last=False)

    async def _run(self, fn: Callable[..., object], *args: object) -> object:
        loop = asyncio.get_running_loop()
        # A hung resolver must not hang the session: stop waiting (the thread finishes later).
        return await asyncio.wait_for(loop.run_in_executor(self._pool, fn, *args), self.timeout)

    async def client_name(self, ip: str) -> str | None:
        """The forward-confirmed reverse name of `ip`, or None."""
        found, value = self._get(self._cache, ip)
        if found:
            return value  # type: ignore[return-value]
        try:
            name = await self._run(_lookup, ip)
        except TimeoutError:
            name = None
        self._put(self._cache, ip, name, name is not None)
        return name  # type: ignore[return-value]

    async def confirms(self, name: str, ip: str) -> bool:
        """Does `name` resolve (forward) to `ip`? For a host name a caller already has."""
        key = (name.rstrip(".").lower(), ip)
        found, value = self._get(self._confirmed, key)
        if found:
            return bool(value)
        try:
            ok = bool(await self._run(_forward_has, key[0], ip))
        except TimeoutError:
            ok = False
        self._put(self._confirmed, key, ok, ok)
        return ok

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
