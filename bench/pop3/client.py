"""The benchmark's POP3 client: asyncio streams plus mailcove's sans-IO client core, so the client
costs little next to the servers it measures (poplib reads line by line in Python).

One session: greeting, USER/PASS, STAT, LIST, UIDL, then RETR 1..n one at a time (each command
waits for its reply, as fetchmail and Thunderbird do), then QUIT. Nothing is deleted, so runs
repeat on the same maildrop. Each RETR's length is checked against LIST.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from mailcove.proto.pop3.client import ClientConnection, Response


@dataclass
class SessionResult:
    seconds: float
    messages: int
    octets: int


class BenchError(RuntimeError):
    pass


class Session:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.core = ClientConnection()

    async def reply(self) -> Response:
        while True:
            r = self.core.next_response()
            if r is not None:
                return r
            data = await self.reader.read(256 * 1024)
            if not data:
                raise BenchError("server closed the connection")
            self.core.receive_data(data)

    async def command(self, line: bytes, multiline: bool = False) -> Response:
        self.writer.write(self.core.send(line, multiline=multiline))
        r = await self.reply()
        if not r.ok:
            raise BenchError(f"{line.split()[0].decode()}: -ERR {r.text.decode(errors='replace')}")
        return r


async def run_session(host: str, port: int, user: str, password: str, retr: int) -> SessionResult:
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    s = Session(reader, writer)
    try:
        await s.reply()  # greeting
        await s.command(b"USER " + user.encode())
        await s.command(b"PASS " + password.encode())
        count = int((await s.command(b"STAT")).text.split()[0])
        sizes = [int(line.split()[1]) for line in (await s.command(b"LIST", True)).lines]
        uidls = (await s.command(b"UIDL", True)).lines
        if len(sizes) != count or len(uidls) != count:
            raise BenchError(f"STAT says {count}, LIST {len(sizes)}, UIDL {len(uidls)}")
        n = min(retr, count)
        octets = 0
        for i in range(1, n + 1):
            body = (await s.command(b"RETR %d" % i, True)).body or b""
            if len(body) != sizes[i - 1]:
                raise BenchError(f"RETR {i}: {len(body)} bytes, LIST said {sizes[i - 1]}")
            octets += len(body)
        await s.command(b"QUIT")
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
    return SessionResult(time.perf_counter() - start, n, octets)


async def run_sessions(
    host: str, port: int, users: list[str], password: str, retr: int
) -> tuple[float, list[SessionResult]]:
    """All users' sessions at once; (wall seconds, per-session results)."""
    start = time.perf_counter()
    results = await asyncio.gather(*(run_session(host, port, u, password, retr) for u in users))
    return time.perf_counter() - start, list(results)
