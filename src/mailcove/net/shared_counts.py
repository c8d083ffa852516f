"""Connection counts shared by the worker processes of one server (net/workers.py).

`[imap] max_connections_per_ip` and its kin are limits of the server, not of one process: with N
workers each counting alone, a client could hold N times its allowance. Each worker keeps its own
counts in its own region of a memory-mapped file in the data dir, and a new connection is judged
on the sum over every worker's region, read and updated under an exclusive flock (held for a few
microseconds). A worker clears its region when it starts, so the counts of one that died (its
connections died with it) are forgotten with it.

A region is, per protocol, the total, then an open-addressing table of (key, count): the key is a
64-bit hash of the protocol and the client (an IPv4 address, an IPv6 /64). A slot whose count fell
to 0 is reused.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from mailcove.config import Settings
from mailcove.core.clients import client_key
from mailcove.core.sharedmap import locked, open_map
from mailcove.net.limits import ConnectionCaps, ConnectionCounter

FILE_NAME = "connections.map"
PROTOCOLS = ("smtp", "imap", "pop3", "http")
MAX_WORKERS = 64
SLOTS = 8192  # per worker: more than one process's connection caps allow clients
PROBES = 64
_TOTALS = struct.Struct(f"<{len(PROTOCOLS)}q")
_ENTRY = struct.Struct("<qq")  # key (0: never used), count
_REGION = _TOTALS.size + SLOTS * _ENTRY.size


class SharedCounts:
    """One worker's view of the file: its own region to write, every region to read."""

    def __init__(self, data_dir: Path, worker: int, workers: int) -> None:
        if not 0 <= worker < workers <= MAX_WORKERS:
            raise ValueError(f"worker {worker} of {workers} (at most {MAX_WORKERS})")
        self.worker = worker
        self.workers = workers
        self._fd, self._map = open_map(data_dir / FILE_NAME, MAX_WORKERS * _REGION)
        start = worker * _REGION
        with locked(self._fd):
            self._map[start : start + _REGION] = bytes(_REGION)  # a new life: no connections

    def counter(self, protocol: str, total: int, per_ip: int) -> SharedConnectionCounter:
        return SharedConnectionCounter(self, PROTOCOLS.index(protocol), total, per_ip)

    def close(self) -> None:
        if self._fd >= 0:
            self._map.close()
            os.close(self._fd)
            self._fd = -1

    # --- under the lock ----------------------------------------------------------------------

    def _total(self, region: int, proto: int) -> int:
        return _TOTALS.unpack_from(self._map, region * _REGION)[proto]

    def _add_total(self, proto: int, delta: int) -> None:
        offset = self.worker * _REGION
        totals = list(_TOTALS.unpack_from(self._map, offset))
        totals[proto] = max(0, totals[proto] + delta)
        _TOTALS.pack_into(self._map, offset, *totals)

    def _slots(self, region: int, key: int) -> Iterator[int]:
        base = region * _REGION + _TOTALS.size
        home = key % SLOTS
        for i in range(PROBES):
            yield base + ((home + i) % SLOTS) * _ENTRY.size

    def _count(self, region: int, key: int) -> int:
        for offset in self._slots(region, key):
            k, n = _ENTRY.unpack_from(self._map, offset)
            if k == key:
                return n
            if k == 0:
                return 0
        return 0

    def _add(self, key: int, delta: int) -> bool:
        """Change this worker's count of `key`; False when its probe sequence is full."""
        reuse = None
        for offset in self._slots(self.worker, key):
            k, n = _ENTRY.unpack_from(self._map, offset)
            if k == key:
                _ENTRY.pack_into(self._map, offset, key, max(0, n + delta))
                return True
            if n == 0 and reuse is None:
                reuse = offset
            if k == 0:
                break
        if delta <= 0:
            return True
        if reuse is None:
            return False
        _ENTRY.pack_into(self._map, reuse, key, delta)
        return True


def _key(proto: int, client: str) -> int:
    digest = hashlib.blake2b(f"{proto}\0{client}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1 or 1  # positive, never 0 (an unused slot)


class SharedConnectionCounter(ConnectionCounter):
    """A ConnectionCounter whose limits count every worker's connections."""

    __slots__ = ("_proto", "_shared")

    def __init__(self, shared: SharedCounts, proto: int, total: int, per_ip: int) -> None:
        super().__init__(total, per_ip)
        self._shared = shared
        self._proto = proto

    def _sums(self, key: int) -> tuple[int, int]:
        sh = self._shared
        return (sum(sh._total(w, self._proto) for w in range(sh.workers)),
                sum(sh._count(w, key) for w in range(sh.workers)))

    def try_add(self, ip: str) -> bool:
        client = client_key(ip)
        key = _key(self._proto, client)
        sh = self._shared
        with locked(sh._fd):
            total, n = self._sums(key)
            if (self.total_limit and total >= self.total_limit) or (self.per_ip_limit and n >= self.per_ip_limit):
                return False
            if not sh._add(key, 1):
                return False  # the table is full: refuse rather than count nothing
            sh._add_total(self._proto, 1)
        super().try_add(ip)  # this process's own view (describe, tests), never over a limit here
        return True

    def remove(self, ip: str) -> None:
        key = _key(self._proto, client_key(ip))
        sh = self._shared
        with locked(sh._fd):
            sh._add(key, -1)
            sh._add_total(self._proto, -1)
        super().remove(ip)

    def describe(self, ip: str) -> str:
        client = client_key(ip)
        with locked(self._shared._fd):
            total, n = self._sums(_key(self._proto, client))
        return f"{total} in total over {self._shared.workers} workers (limit {self.total_limit}), " \
               f"{n} from {client} (limit {self.per_ip_limit})"


def shared_caps(settings: Settings, counts: SharedCounts) -> ConnectionCaps:
    """ConnectionCaps.from_settings, each counter counting every worker's connections."""
    return ConnectionCaps(
        smtp=counts.counter("smtp", settings.smtp.max_connections, settings.smtp.max_connections_per_ip),
        imap=counts.counter("imap", settings.imap.max_connections, settings.imap.max_connections_per_ip),
        pop3=counts.counter("pop3", settings.pop3.max_connections, settings.pop3.max_connections_per_ip),
        http=counts.counter("http", settings.web.max_connections, settings.web.max_connections_per_ip),
    )
