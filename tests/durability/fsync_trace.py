"""Parse `strace -f -ttt -T -y -s 4096 -o FILE` output and check, for each acknowledged message,
that its bytes reached a synced file before the acknowledgement left the server.

For a message stored inline (in SQLite's WAL):
    write of the marker to <data>/mail.db-wal  ->  fsync/fdatasync of that WAL (started after the
    write ended, ended before the ack started)  ->  write of the ack to the client socket.
For a message stored as a blob file:
    write of the marker to the spool file -> fsync of that file -> rename into blobs/XX/ ->
    fsync of blobs/XX (the directory entry) -> fsync of the WAL (the row that references the
    blob) -> the ack.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

WRITES = {"write", "writev", "pwrite64", "pwritev", "pwritev2"}
SENDS = {"write", "writev", "sendto", "sendmsg"}
SYNCS = {"fsync", "fdatasync"}
RENAMES = {"rename", "renameat", "renameat2"}

_LINE = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(\d+\.\d+)\s+(.*)$")
_CALL = re.compile(r"^([a-z0-9_]+)\((.*)$", re.S)
_RESUMED = re.compile(r"^<\.\.\. ([a-z0-9_]+) resumed>(.*)$", re.S)
_RESULT = re.compile(r"\)\s+=\s+(-?\d+|\?)(?:\s+[A-Z]\w*.*?)?\s+<(\d+\.\d+)>\s*$")
_FD = re.compile(r"^\s*(\d+)<(.*?)>(?:,|$)")
_STR = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass
class Call:
    pid: int
    name: str
    start: float
    end: float
    ret: int | None
    args: str
    path: str = ""  # the fd's target as strace -y shows it
    strings: list[str] = field(default_factory=list)

    @property
    def data(self) -> str:
        return "".join(self.strings)


def parse(text: str) -> list[Call]:
    calls: list[Call] = []
    pending: dict[tuple[int, str], tuple[float, str]] = {}
    for raw in text.splitlines():
        m = _LINE.match(raw)
        if not m:
            continue
        pid, ts, rest = int(m.group(1)), float(m.group(2)), m.group(3)
        if rest.startswith("+++") or rest.startswith("---"):
            continue
        r = _RESUMED.match(rest)
        if r:
            name, tail = r.group(1), r.group(2)
            if (pid, name) not in pending:
                continue
            start, head = pending.pop((pid, name))
            _finish(calls, pid, name, start, head + tail)
            continue
        c = _CALL.match(rest)
        if not c:
            continue
        name, body = c.group(1), c.group(2)
        if body.endswith("<unfinished ...>"):
            pending[(pid, name)] = (ts, body[: -len("<unfinished ...>")].rstrip())
            continue
        _finish(calls, pid, name, ts, body)
    calls.sort(key=lambda c: c.start)
    return calls


def _finish(calls: list[Call], pid: int, name: str, start: float, body: str) -> None:
    res = _RESULT.search(body)
    if not res:
        return
    ret = None if res.group(1) == "?" else int(res.group(1))
    args = body[: res.start()]
    call = Call(pid, name, start, start + float(res.group(2)), ret, args)
    fd = _FD.match(args)
    if fd:
        call.path = fd.group(2)
    call.strings = _STR.findall(args)
    calls.append(call)


@dataclass(frozen=True)
class Expectation:
    marker: str  # unique text inside the message
    ack: str  # the reply line the client got, without CRLF
    blob: bool  # stored as a blob file (large message) rather than inline


def check(calls: list[Call], data_dir: str, expectations: list[Expectation]) -> list[str]:
    """Returns one problem description per expectation that is not met (empty: all good)."""
    data_dir = os.path.realpath(data_dir)
    wal = os.path.join(data_dir, "mail.db-wal")
    problems: list[str] = []
    syncs = [c for c in calls if c.name in SYNCS and c.ret == 0]
    renames = [c for c in calls if c.name in RENAMES and c.ret == 0]
    for exp in expectations:
        wire = exp.ack + "\\r\\n"
        acks = [
            c for c in calls
            if c.name in SENDS and c.path != wal and any(s.startswith(wire) or s == wire for s in c.strings)
        ]
        if len(acks) != 1:
            problems.append(f"{exp.marker}: expected one ack write of {exp.ack!r}, found {len(acks)}")
            continue
        ack = acks[0]
        writes = [
            c for c in calls
            if c.name in WRITES and c.path.startswith(data_dir) and exp.marker in c.data and c.end <= ack.start
        ]
        if not writes:
            problems.append(f"{exp.marker}: no write of the message to a file under {data_dir} before its ack")
            continue

        def synced(path: str, after: float, before: float) -> bool:
            return any(s.path == path and s.start >= after and s.end <= before for s in syncs)

        if not exp.blob:
            if not any(w.path == wal and synced(wal, w.end, ack.start) for w in writes):
                problems.append(f"{exp.marker}: no WAL fsync between the write of the message and its ack")
            continue
        ok = False
        for w in writes:
            if w.path == wal:
                continue
            for s in (s for s in syncs if s.path == w.path and s.start >= w.end and s.end <= ack.start):
                for r in renames:
                    src, dst = [*r.strings, "", ""][:2]
                    if os.path.realpath(src) != w.path or r.start < s.end or r.end > ack.start:
                        continue
                    dst_dir = os.path.dirname(os.path.realpath(dst))
                    if synced(dst_dir, r.end, ack.start) and synced(wal, r.end, ack.start):
                        ok = True
        if not ok:
            problems.append(
                f"{exp.marker}: blob not made durable before its ack (need write -> fsync file -> rename -> "
                "fsync directory -> fsync WAL -> ack)"
            )
    return problems
