"""Who has been given which messages as \\Recent: per mailbox, the highest UID handed out.

RFC 3501 2.3.2: a message is \\Recent in exactly one session, the first to be shown it. Sessions
of every worker process (net/workers.py) must agree on that, and so must a restarted server
(Dovecot keeps the mark in its index, so a restart does not make old mail recent again). The
floors therefore live in a small memory-mapped table in the data dir, shared by the processes of
one server: an open-addressing hash table of (mailbox id, UIDVALIDITY) -> floor, each read under
a shared flock and each claim (read, compare, write) under an exclusive one. A claim holds the
lock for a few microseconds, so no session waits on another for longer than that.

A mailbox deleted and created again has a new UIDVALIDITY, so it never meets the old floor. The
table has SLOTS entries; when a key's probe sequence is full, its home slot is overwritten, which
forgets another mailbox's floor: that mailbox's messages are shown as \\Recent once more, the
harmless direction.
"""

from __future__ import annotations

import fcntl
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from mailcove.core.sharedmap import locked, open_map

FILE_NAME = "imap-recent.map"
SLOTS = 1 << 16
PROBES = 32
# mailbox id + 1 (0: never used, -1: freed), UIDVALIDITY, floor
_ENTRY = struct.Struct("<qqq")
_FREED = -1

Key = tuple[int, int]


class RecentFloors:
    def __init__(self, data_dir: Path) -> None:
        self._fd, self._map = open_map(data_dir / FILE_NAME, SLOTS * _ENTRY.size)

    def close(self) -> None:
        if self._fd >= 0:
            self._map.close()
            os.close(self._fd)
            self._fd = -1

    def _probe(self, key: Key) -> Iterator[int]:
        mailbox_id, uidvalidity = key
        home = ((mailbox_id * 0x9E3779B1) ^ (uidvalidity * 0x85EBCA77)) % SLOTS
        for i in range(PROBES):
            yield (home + i) % SLOTS

    def _find(self, key: Key) -> tuple[int | None, int]:
        """(the slot holding `key` or None, the slot a new entry for it goes to)."""
        tag = key[0] + 1
        free: int | None = None
        first = -1
        for slot in self._probe(key):
            if first < 0:
                first = slot
            ident, uidvalidity, _floor = _ENTRY.unpack_from(self._map, slot * _ENTRY.size)
            if ident == tag and uidvalidity == key[1]:
                return slot, slot
            if ident == 0:
                return None, free if free is not None else slot
            if ident == _FREED and free is None:
                free = slot
        return None, free if free is not None else first

    def get(self, key: Key) -> int | None:
        """The highest UID given out as \\Recent in this mailbox, None if none ever was."""
        with locked(self._fd, fcntl.LOCK_SH):
            slot, _ = self._find(key)
            return None if slot is None else _ENTRY.unpack_from(self._map, slot * _ENTRY.size)[2]

    def claim(self, key: Key, up_to_uid: int) -> tuple[int, int] | None:
        """The UIDs in (floor, up_to_uid] nobody was given as \\Recent yet, as an interval; they
        are now the caller's. Without a floor every UID up to `up_to_uid` is claimed."""
        with locked(self._fd):
            slot, target = self._find(key)
            floor = 0 if slot is None else _ENTRY.unpack_from(self._map, slot * _ENTRY.size)[2]
            if up_to_uid <= floor:
                return None
            _ENTRY.pack_into(self._map, target * _ENTRY.size, key[0] + 1, key[1], up_to_uid)
            return (floor, up_to_uid)

    def move(self, old: Key, new: Key) -> None:
        """A RENAME: the same messages under a new identity keep their floor."""
        with locked(self._fd):
            slot, _ = self._find(old)
            if slot is None:
                return
            floor = _ENTRY.unpack_from(self._map, slot * _ENTRY.size)[2]
            _ENTRY.pack_into(self._map, slot * _ENTRY.size, _FREED, 0, 0)
            _, target = self._find(new)
            _ENTRY.pack_into(self._map, target * _ENTRY.size, new[0] + 1, new[1], floor)

    def forget(self, key: Key) -> None:
        with locked(self._fd):
            slot, _ = self._find(key)
            if slot is not None:
                _ENTRY.pack_into(self._map, slot * _ENTRY.size, _FREED, 0, 0)
