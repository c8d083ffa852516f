"""A small asyncio IMAP client for the benchmark: the same code drives mailcove and Dovecot.

It is deliberately thin (no response parsing beyond finding the tagged line and skipping literals),
so the client costs little CPU next to the server it measures: both share the machine's 2 cores.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Sequence

_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")


class ImapError(Exception):
    pass


_CTX: list[ssl.SSLContext] = []


def _client_context() -> ssl.SSLContext:
    """One context for every connection: building one loads the CA store (tens of ms), which would
    make the client, not the server, the bottleneck of a connection storm. No verification: the
    bench measures the servers' cost, and both use throwaway certificates."""
    if not _CTX:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        _CTX.append(ctx)
    return _CTX[0]


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r = reader
        self.w = writer
        self.n = 0
        self.bytes_in = 0
        self.unavailable = 0

    @classmethod
    async def connect(
        cls, host: str, port: int, *, tls: bool = False, local_addr: str | None = None, limit: int = 1 << 20
    ) -> Client:
        ctx = _client_context() if tls else None
        reader, writer = await asyncio.open_connection(
            host, port, ssl=ctx, local_addr=(local_addr, 0) if local_addr else None, limit=limit
        )
        c = cls(reader, writer)
        greeting = await reader.readline()
        if not greeting.startswith(b"* OK"):
            raise ImapError(f"greeting {greeting!r}")
        return c

    async def read_response(self) -> bytes:
        """One response line (literals skipped over and counted)."""
        line = await self.r.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        self.bytes_in += len(line)
        while True:
            m = _LITERAL.search(line)
            if not m:
                return line
            n = int(m.group(1))
            await self.r.readexactly(n)
            self.bytes_in += n
            line = await self.r.readline()
            self.bytes_in += len(line)

    async def command(self, cmd: bytes, *literals: bytes) -> list[bytes]:
        """Send a command (literals as LITERAL+ `{n+}` markers written by the caller) and wait for
        its tagged reply. Returns the untagged lines; raises ImapError unless OK."""
        self.n += 1
        tag = b"b%d" % self.n
        data = tag + b" " + cmd
        for lit in literals:
            data += lit
        self.w.write(data + b"\r\n")
        out = []
        while True:
            line = await self.read_response()
            if line.startswith(tag + b" "):
                if line[len(tag) + 1 : len(tag) + 3] != b"OK":
                    raise ImapError(f"{cmd[:60]!r}: {line!r}")
                return out
            out.append(line)

    async def login(self, user: str, password: str, retries: int = 50) -> None:
        """LOGIN; a NO [UNAVAILABLE] (mailcove: too many password checks waiting) is retried after
        a pause, as a client would."""
        for attempt in range(retries):
            try:
                await self.command(b'LOGIN "%s" "%s"' % (user.encode(), password.encode()))
                return
            except ImapError as exc:
                if "[UNAVAILABLE]" not in str(exc) or attempt == retries - 1:
                    raise
                self.unavailable += 1
                await asyncio.sleep(0.1)

    async def append(self, mailbox: str, message: bytes, flags: str = "") -> None:
        # LITERAL+ (both servers advertise it): one round trip per APPEND
        await self.command(b"APPEND %s (%s) {%d+}\r\n" % (mailbox.encode(), flags.encode(), len(message)), message)

    async def idle_start(self) -> None:
        self.n += 1
        self.idle_tag = b"b%d" % self.n
        self.w.write(self.idle_tag + b" IDLE\r\n")
        await self.w.drain()
        while True:
            line = await self.read_response()
            if line.startswith(b"+"):
                return
            if line.startswith(self.idle_tag):
                raise ImapError(f"IDLE refused: {line!r}")

    async def idle_done(self) -> list[bytes]:
        self.w.write(b"DONE\r\n")
        out = []
        while True:
            line = await self.read_response()
            if line.startswith(self.idle_tag + b" "):
                return out
            out.append(line)

    async def logout(self) -> None:
        try:
            await self.command(b"LOGOUT")
        except (ImapError, ConnectionError):
            pass
        self.close()

    def close(self) -> None:
        try:
            self.w.close()
        except Exception:
            pass


def seqset(uids: Sequence[int]) -> bytes:
    return b",".join(b"%d" % u for u in uids)
