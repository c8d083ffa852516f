"""The asyncio side of the SMTP client role: a connection to one next hop, driven through the
sans-IO core in proto/smtp/client.py.

Why the in-house core rather than aiosmtplib: the core already parses replies with bounded lines
and dot-stuffs in one pass (the smuggling-safe direction), and the queue needs things aiosmtplib
hides or does per call: PIPELINING of MAIL + every RCPT in one write with a reply per recipient,
the raw enhanced codes for DSNs, and one connection reused across messages. The core lacks an
EHLO keyword parser and a transaction helper; this adapter adds them (docs/design/outbound.md)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field

from mailcove.proto.smtp.client import ClientConnection, ClientProtocolError
from mailcove.proto.smtp.events import ServerReply
from mailcove.proto.smtp.replies import Reply

READ_CHUNK = 65536


class HopError(Exception):
    """The conversation with a next hop broke (connect, timeout, protocol, TLS): a temporary
    failure for every recipient still open on it."""

    def __init__(self, text: str, *, reply: Reply | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.reply = reply


@dataclass
class Transaction:
    mail: Reply | None = None
    rcpts: list[Reply] = field(default_factory=list)
    data: Reply | None = None


class SmtpClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, *,
                 reply_timeout: float) -> None:
        self.reader = reader
        self.writer = writer
        self.host = host  # the name or address we connected to, for DSNs (Remote-MTA)
        self.timeout = reply_timeout
        self.core = ClientConnection()
        self.extensions: dict[str, str] = {}
        self.tls = False
        self.greeting: Reply | None = None
        self.closing = False  # the server said 421: no further transaction on this connection

    @classmethod
    async def connect(cls, host: str, address: str, port: int, *, connect_timeout: float, reply_timeout: float,
                      implicit_tls: ssl.SSLContext | None = None, server_hostname: str | None = None) -> SmtpClient:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(address, port, ssl=implicit_tls,
                                        server_hostname=server_hostname if implicit_tls else None,
                                        limit=READ_CHUNK),
                connect_timeout,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise HopError(f"connect to {host}[{address}]:{port}: {exc or type(exc).__name__}") from None
        c = cls(reader, writer, host, reply_timeout=reply_timeout)
        c.tls = implicit_tls is not None
        return c

    async def read_reply(self) -> Reply:
        while True:
            try:
                ev = self.core.next_event()
            except ClientProtocolError as exc:
                raise HopError(f"{self.host}: {exc}") from None
            if isinstance(ev, ServerReply):
                return ev.reply
            try:
                data = await asyncio.wait_for(self.reader.read(READ_CHUNK), self.timeout)
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                raise HopError(f"{self.host}: lost connection ({exc or type(exc).__name__})") from None
            if not data:
                raise HopError(f"{self.host}: connection closed")
            self.core.receive_data(data)

    async def send(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), self.timeout)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise HopError(f"{self.host}: write failed ({exc or type(exc).__name__})") from None

    async def command(self, verb: str, arg: str = "") -> Reply:
        await self.send(self.core.command(verb, arg))
        return await self.read_reply()

    async def greet(self) -> Reply:
        self.greeting = await self.read_reply()
        return self.greeting

    async def ehlo(self, name: str) -> Reply:
        reply = await self.command("EHLO", name)
        self.extensions = {}
        if reply.code == 250:
            for line in reply.lines:
                keyword, _, params = line.strip().partition(" ")
                self.extensions[keyword.upper()] = params
            return reply
        if reply.permanent:
            # RFC 5321 3.2: an old server without EHLO gets HELO and no extensions
            return await self.command("HELO", name)
        return reply

    def has(self, extension: str) -> bool:
        return extension.upper() in self.extensions

    async def starttls(self, ctx: ssl.SSLContext, server_hostname: str | None) -> Reply:
        reply = await self.command("STARTTLS")
        if reply.code != 220:
            return reply
        try:
            await asyncio.wait_for(self.writer.start_tls(ctx, server_hostname=server_hostname), self.timeout)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise HopError(f"{self.host}: TLS handshake failed ({exc or type(exc).__name__})") from None
        self.tls = True
        # RFC 3207 4.2: forget everything learnt before TLS, including buffered bytes
        self.core = ClientConnection()
        return reply

    async def auth_plain(self, username: str, password: str) -> Reply:
        token = base64.b64encode(b"\0" + username.encode() + b"\0" + password.encode()).decode()
        return await self.command("AUTH", f"PLAIN {token}")

    async def transaction(self, mail_arg: str, rcpt_args: Sequence[str], message: bytes) -> Transaction:
        """MAIL, every RCPT and DATA. With PIPELINING (RFC 2920) MAIL and the RCPTs go in one
        write and DATA follows the last RCPT unanswered-for; without it, one command at a time."""
        t = Transaction()
        core = self.core
        if self.has("PIPELINING"):
            await self.send(core.command("MAIL", mail_arg) + b"".join(core.command("RCPT", a) for a in rcpt_args))
            t.mail = await self.read_reply()
            for _ in rcpt_args:
                t.rcpts.append(await self.read_reply())
        else:
            t.mail = await self.command("MAIL", mail_arg)
            if t.mail.code != 250:
                return t
            for a in rcpt_args:
                t.rcpts.append(await self.command("RCPT", a))
        if t.mail.code != 250 or not any(r.code in (250, 251) for r in t.rcpts):
            await self.reset()
            return t
        reply = await self.command("DATA")
        if reply.code != 354:
            t.data = reply
            return t
        await self.send(core.data(message))
        t.data = await self.read_reply()
        return t

    async def reset(self) -> None:
        reply = await self.command("RSET")
        if reply.code != 250:
            raise HopError(f"{self.host}: RSET refused: {reply.code} {reply.text}", reply=reply)

    async def quit(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.command("QUIT"), 5)
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
