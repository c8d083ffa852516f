"""The login throttle's entries shared by the worker processes of one server (net/workers.py).

`[auth] max_failures_per_ip` is a limit of the server: with N workers each counting alone, a
guesser whose connections the kernel spreads over them would get N times its allowance. So with
workers the throttle (directory/throttle.py, which keeps the rules) keeps its entries in a
memory-mapped file in the data dir, read and written under an exclusive flock held for a few
microseconds per login, as imap/recent.py and net/shared_counts.py do.

The file is a fixed-size open-addressing table: a slot per client (an IPv4 address, an IPv6 /64)
or account name, keyed by a 64-bit hash of its kind and name, holding its entries (the time of
each failure or reservation, CLOCK_MONOTONIC, which on Linux is one clock for every process of the
machine) and which of them are reservations still in flight. Bounded, whatever a flood of spoofed
addresses sends: a new key takes a free slot, or one whose entries all left the window, or else
evicts the slot of its probe sequence seen least recently. A reservation counts as in flight only
while it is in the window, so a worker that dies mid-check leaves nothing stuck for longer.

The header holds the machine's boot id: monotonic readings of an earlier boot mean nothing now,
so after a reboot the table starts empty; across a restart of the server it is kept (a guesser's
count survives it, as the connection caps do not need to).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from mailcove.config.settings import AuthSettings
from mailcove.core.clock import SYSTEM_CLOCK, Clock
from mailcove.core.sharedmap import locked, open_map
from mailcove.directory.throttle import ACCOUNT_KEEP_EXTRA, CLIENT, Entry, LoginThrottle

FILE_NAME = "login-throttle.map"
SLOTS = 1 << 16
MAX_FILE_BYTES = 64 << 20  # fewer slots when the configured limits make each slot large
PROBES = 32
MIN_CAPACITY = 16  # a client with no limit (max_failures_per_ip = 0) keeps this many: its delay is long maxed by then
_UNUSED = 0  # a slot never used: a probe sequence ends there
_FREED = 1  # a slot whose key was forgotten: probes go on past it, a new key may take it
_HEADER_SIZE = 128
_HEAD = struct.Struct("<qdII")  # key, newest entry's time, kind, number of entries


def _boot_id() -> bytes:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_bytes().strip()[:36]
    except OSError:
        return b""


def _hash(kind: int, key: str) -> int:
    digest = hashlib.blake2b(f"{kind}\0{key}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return max(int.from_bytes(digest, "little") >> 1, _FREED + 1)


class SharedTable:
    """A ThrottleTable (directory/throttle.py) in `<data_dir>/login-throttle.map`, keeping up to
    `capacity` entries per key (the newest)."""

    def __init__(self, data_dir: Path, capacity: int, *, slots: int = SLOTS) -> None:
        self.capacity = max(capacity, MIN_CAPACITY)
        self._slot = struct.Struct(f"<qdII{self.capacity}d{self.capacity}?")
        self.slots = max(PROBES, min(slots, MAX_FILE_BYTES // self._slot.size))
        header = b"mailcove login throttle 1\0" + struct.pack("<II", self.capacity, self.slots) + _boot_id()
        assert len(header) <= _HEADER_SIZE
        self._fd, self._map = open_map(data_dir / FILE_NAME, _HEADER_SIZE + self.slots * self._slot.size, header)

    def close(self) -> None:
        if self._fd >= 0:
            self._map.close()
            os.close(self._fd)
            self._fd = -1

    def locked(self) -> contextlib.AbstractContextManager[None]:
        return locked(self._fd)

    def _probe(self, h: int) -> Iterator[int]:
        home = h % self.slots
        for i in range(PROBES):
            yield _HEADER_SIZE + ((home + i) % self.slots) * self._slot.size

    def get(self, kind: int, key: str) -> list[Entry]:
        h = _hash(kind, key)
        for offset in self._probe(h):
            k = _HEAD.unpack_from(self._map, offset)[0]
            if k == h:
                fields = self._slot.unpack_from(self._map, offset)
                n = fields[3]
                stamps = fields[4 : 4 + n]
                reserved = fields[4 + self.capacity : 4 + self.capacity + n]
                return list(zip(stamps, reserved, strict=True))
            if k == _UNUSED:
                break
        return []

    def put(self, kind: int, key: str, entries: list[Entry], horizon: float) -> None:
        h = _hash(kind, key)
        found = free = oldest = None
        oldest_seen = 0.0
        for offset in self._probe(h):
            k, newest, _kind, n = _HEAD.unpack_from(self._map, offset)
            if k == h:
                found = offset
                break
            if k == _UNUSED:
                free = offset if free is None else free
                break
            if free is None and (k == _FREED or n == 0 or newest <= horizon):
                free = offset  # forgotten, or every entry has left the window
            if oldest is None or newest < oldest_seen:
                oldest, oldest_seen = offset, newest
        if not entries:
            if found is not None:
                _HEAD.pack_into(self._map, found, _FREED, 0.0, 0, 0)
            return
        target = found if found is not None else free if free is not None else oldest
        assert target is not None  # PROBES >= 1
        entries = entries[-self.capacity :]
        pad = self.capacity - len(entries)
        stamps = [when for when, _ in entries] + [0.0] * pad
        reserved = [held for _, held in entries] + [False] * pad
        self._slot.pack_into(self._map, target, h, entries[-1][0], kind, len(entries), *stamps, *reserved)

    def __len__(self) -> int:
        """Clients tracked (a scan of the whole table: for tests and diagnostics)."""
        count = 0
        for slot in range(self.slots):
            k, _newest, kind, n = _HEAD.unpack_from(self._map, _HEADER_SIZE + slot * self._slot.size)
            count += k > _FREED and kind == CLIENT and n > 0
        return count


def shared_throttle(auth: AuthSettings, data_dir: Path, *, clock: Clock = SYSTEM_CLOCK) -> LoginThrottle:
    """LoginThrottle.from_settings, its entries in the table every worker of the server shares."""
    capacity = max(auth.max_failures_per_ip, auth.failures_per_account_before_delay + ACCOUNT_KEEP_EXTRA)
    return LoginThrottle.from_settings(auth, clock=clock, table=SharedTable(data_dir, capacity))
