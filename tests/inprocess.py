"""In-process servers for session tests: the real SMTP, IMAP and POP3 handlers of `mailcove serve`,
each protocol's server built from its package's dependencies dataclass as app.py builds it, over
a real SQLite store and directory in a temporary data dir, with connections that are in-memory
stream pairs and a FakeClock for time (mox's style of starting the server inside the test).

    async def test_idle_smtp_client_is_cut(tmp_path):
        async with serve_in_process(tmp_path, "[smtp]\\ncommand_timeout = 60\\n") as lab:
            c = await lab.smtp()                   # greeted: c.greeting
            assert (await c.cmd(b"EHLO x")).startswith(b"250")
            await lab.clock.advance(61)            # a minute passes, in microseconds
            assert (await c.reply()).startswith(b"421 4.4.2")

What a session waits for is on the clock: deadlines, throttle delays, the lock renewals. Nothing
but the clock moves it, so a test says how much time passes (`advance`) and can check that the
server really waits, and how long (`clock.waiting(0.5)`: a failed login is answered after 0.5 s,
not at once). Bytes are not on the clock: the client's reads wait in real time, bounded by
`REAL_TIMEOUT` so a session that never answers fails the test instead of hanging it.

The connection is `net.listeners.Connection` itself over a `Pipe`: the server's side is an
asyncio.StreamReader and a writer with StreamWriter's interface, the client's side a byte buffer.
A client that stops reading (`client.reading = False`) fills a window (`Pipe.WINDOW`, what a
kernel's socket buffers would hold) after which the server's drain() waits, as a real one does.

Keep real-socket tests (`serve_factory`) for what needs a process: TLS, durability, signals,
privileges, real clients, and one end-to-end test per protocol of each kind of limit."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from mailcove.app import PROTOCOL_OF, Proto, ProtocolServer
from mailcove.config import Settings, load_settings
from mailcove.core.clock import FakeClock
from mailcove.directory import open_directory
from mailcove.imap.server import ImapDeps, ImapServer
from mailcove.net.limits import ConnectionCaps
from mailcove.net.listeners import STREAM_LIMIT, Connection, ConnectionTracker, new_session_id
from mailcove.net.tls import TlsHolder
from mailcove.pop3.server import Pop3Deps, Pop3Server
from mailcove.proto.imap.client import Continuation, ResponseParser, Tagged, Untagged
from mailcove.smtp import server as smtp_server
from mailcove.smtp.server import SmtpDeps
from mailcove.store.api import MailStore
from mailcove.store.factory import open_store

PASSWORD = "It1"
USERS = ("a@hamap.local", "b@hamap.local")
# Seconds of real time a client waits for bytes before the test fails: only a guard against a
# hang, never a timing the test depends on.
REAL_TIMEOUT = 10.0

_ports = itertools.count(40000)


class _Transport:
    """The part of an asyncio transport the sessions use."""

    def __init__(self, pipe: Pipe) -> None:
        self._pipe = pipe

    def get_write_buffer_size(self) -> int:
        return max(0, len(self._pipe.to_client) - self._pipe.WINDOW) if not self._pipe.client_closed else 0

    def is_closing(self) -> bool:
        return self._pipe.server_closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self._pipe.close_server_side()

    def abort(self) -> None:
        self._pipe.close_server_side()


class _Writer:
    """The server's writer: asyncio.StreamWriter's interface over a Pipe."""

    def __init__(self, pipe: Pipe) -> None:
        self._pipe = pipe
        self.transport = _Transport(pipe)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pipe = self._pipe
        if pipe.server_closed or pipe.client_closed:
            return  # as a transport that lost its connection: the bytes go nowhere
        pipe.to_client += data
        pipe.wake_client()

    async def drain(self) -> None:
        # As asyncio's: wait only above the high-water mark, until below the low one.
        pipe = self._pipe
        if self.transport.get_write_buffer_size() > pipe.HIGH_WATER:
            while not pipe.client_closed and self.transport.get_write_buffer_size() > pipe.LOW_WATER:
                pipe.consumed.clear()
                await pipe.consumed.wait()
        if pipe.client_closed and not pipe.server_closed:
            raise ConnectionResetError("Connection lost")
        await asyncio.sleep(0)

    def close(self) -> None:
        self._pipe.close_server_side()

    def is_closing(self) -> bool:
        return self._pipe.server_closed

    async def wait_closed(self) -> None:
        await asyncio.sleep(0)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": self._pipe.peer, "sockname": self._pipe.local}.get(name, default)


class Pipe:
    """One in-memory connection between a test's client and a server session."""

    WINDOW = 256 * 1024  # bytes the client's side holds unread (a kernel's socket buffers)
    HIGH_WATER, LOW_WATER = 64 * 1024, 16 * 1024  # asyncio's, for what is beyond the window

    def __init__(self, peer: tuple[str, int], local: tuple[str, int]) -> None:
        self.peer = peer
        self.local = local
        self.reader = asyncio.StreamReader(limit=STREAM_LIMIT)  # the server reads here
        self.writer = _Writer(self)
        self.to_client = bytearray()
        self.server_closed = False
        self.client_closed = False
        self.changed = asyncio.Event()  # for the client: bytes arrived or the server closed
        self.consumed = asyncio.Event()  # for the server's drain: the client read or went away

    def wake_client(self) -> None:
        self.changed.set()

    def close_server_side(self) -> None:
        if self.server_closed:
            return
        self.server_closed = True
        # A transport that closes ends its own pending read too (connection_lost feeds EOF).
        if not self.reader.at_eof():
            self.reader.feed_eof()
        self.changed.set()
        self.consumed.set()


class Client:
    """The test's end of a connection: bytes in, bytes out, EOF. Protocol clients build on it."""

    def __init__(self, pipe: Pipe, task: asyncio.Task[None]) -> None:
        self.pipe = pipe
        self.task = task  # the server's session
        self.reading = True  # False: leave the server's output unread (a client that stops reading)
        self.buf = bytearray()

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        if self.pipe.client_closed:
            raise ConnectionError("the client closed this connection")
        if self.pipe.server_closed or self.pipe.reader.at_eof():
            return  # the server hung up: what is sent is lost (a real socket may still take it)
        self.pipe.reader.feed_data(data)

    def close(self) -> None:
        pipe = self.pipe
        if pipe.client_closed:
            return
        pipe.client_closed = True
        if not pipe.reader.at_eof():
            pipe.reader.feed_eof()
        pipe.consumed.set()

    def _take(self) -> None:
        if self.reading and self.pipe.to_client:
            self.buf += self.pipe.to_client
            self.pipe.to_client.clear()
            self.pipe.consumed.set()

    async def _more(self, timeout: float) -> bool:
        """Wait for more bytes; False at EOF (the server closed and everything was read)."""
        pipe = self.pipe
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout
        while True:
            before = len(self.buf)
            self._take()
            if len(self.buf) > before:
                return True
            if pipe.server_closed:
                return False
            pipe.changed.clear()
            left = give_up - loop.time()
            if left <= 0:
                raise TimeoutError(f"no bytes from the server within {timeout}s (real time); have {bytes(self.buf)!r}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pipe.changed.wait(), left)

    async def line(self, timeout: float = REAL_TIMEOUT) -> bytes:
        """The next line with its CRLF; at EOF what is left (b"" when nothing)."""
        while b"\n" not in self.buf:
            if not await self._more(timeout):
                out = bytes(self.buf)
                self.buf.clear()
                return out
        end = self.buf.index(b"\n") + 1
        out = bytes(self.buf[:end])
        del self.buf[:end]
        return out

    async def read_all(self, timeout: float = REAL_TIMEOUT) -> bytes:
        """Everything until the server closes the connection."""
        while await self._more(timeout):
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def unread(self) -> bytes:
        """What the server has written and the client not yet read (without waiting)."""
        self._take()
        return bytes(self.buf)

    @property
    def closed_by_server(self) -> bool:
        return self.pipe.server_closed


class SmtpClient(Client):
    greeting: bytes = b""

    async def reply(self, timeout: float = REAL_TIMEOUT) -> bytes:
        """One whole reply, multi-line joined; b"" at EOF."""
        lines = []
        while True:
            line = await self.line(timeout)
            if not line.endswith(b"\n"):
                return b"".join(lines) + line
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                return b"".join(lines)

    async def cmd(self, line: bytes) -> bytes:
        self.send(line + b"\r\n")
        return await self.reply()

    async def replies(self, n: int) -> list[bytes]:
        return [await self.reply() for _ in range(n)]


class Pop3Client(Client):
    greeting: bytes = b""

    async def cmd(self, line: bytes) -> bytes:
        """Send one command; its first reply line."""
        self.send(line + b"\r\n")
        return await self.line()

    async def multiline(self) -> list[bytes]:
        """The lines of a multi-line reply after its status line, up to the ".", unstuffed."""
        out = []
        while True:
            line = await self.line()
            if line in (b".\r\n", b""):
                return out
            out.append(line[1:] if line.startswith(b"..") else line)

    async def login(self, user: str = USERS[0], password: str = PASSWORD) -> bytes:
        assert (await self.cmd(b"USER " + user.encode())).startswith(b"+OK")
        return await self.cmd(b"PASS " + password.encode())


class ImapClient(Client):
    """Every response goes through proto/imap/client.py's strict parser, as in tests/imap."""

    greeting: Any = None

    def __init__(self, pipe: Pipe, task: asyncio.Task[None]) -> None:
        super().__init__(pipe, task)
        self.parser = ResponseParser()
        self.n = 0

    async def read_one(self, timeout: float = REAL_TIMEOUT) -> Any:
        while True:
            r = self.parser.next_response()
            if r is not None:
                return r
            if not self.buf and not await self._more(timeout):
                raise ConnectionError("server closed the connection")
            self.parser.receive_data(bytes(self.buf))
            self.buf.clear()

    def tag(self) -> str:
        self.n += 1
        return f"t{self.n}"

    async def cmd(self, text: str | bytes) -> tuple[list[Untagged], Tagged]:
        tag = self.tag()
        self.send(tag.encode() + b" " + (text.encode() if isinstance(text, str) else text) + b"\r\n")
        return await self.until(tag)

    async def until(self, tag: str) -> tuple[list[Untagged], Tagged]:
        untagged: list[Untagged] = []
        while True:
            r = await self.read_one()
            if isinstance(r, Tagged):
                assert r.tag == tag, f"unexpected tag {r.tag} (waiting for {tag})"
                return untagged, r
            if isinstance(r, Continuation):
                raise AssertionError(f"unexpected continuation {r}")
            untagged.append(r)

    async def ok(self, text: str | bytes) -> list[Untagged]:
        untagged, done = await self.cmd(text)
        assert done.status == "OK", f"{text!r}: {done}"
        return untagged

    async def login(self, user: str = USERS[0], password: str = PASSWORD) -> None:
        await self.ok(f'LOGIN "{user}" "{password}"')

    async def continuation(self) -> Continuation:
        r = await self.read_one()
        assert isinstance(r, Continuation), r
        return r


_CLIENTS: dict[str, type[Client]] = {
    "smtp": SmtpClient, "submission": SmtpClient, "imap": ImapClient, "pop3": Pop3Client,
}


class InProcessServer:
    """A server's protocol handlers in this process and event loop. Built by serve_in_process."""

    def __init__(self, settings: Settings, store: MailStore, directory: Any, clock: FakeClock) -> None:
        self.settings = settings
        self.store = store
        self.directory = directory
        self.clock = clock
        self.tracker = ConnectionTracker()
        self.tls = TlsHolder(settings.tls, settings.data_dir, settings.hostname)
        self.caps = ConnectionCaps.from_settings(settings)
        self._servers: dict[Proto, ProtocolServer] = {}
        self._handlers: dict[str, Callable[[Connection], Awaitable[None]]] = {}
        self._clients: list[Client] = []

    async def handler(self, listener: str) -> Callable[[Connection], Awaitable[None]]:
        h = self._handlers.get(listener)
        if h is None:
            h = self._handlers[listener] = (await self.server(listener)).handler(listener)
        return h

    async def server(self, listener: str) -> ProtocolServer:
        """The listener's protocol server, built once per protocol as app.py builds it."""
        proto = PROTOCOL_OF[listener]
        server = self._servers.get(proto)
        if server is None:
            s, caps = self.settings, self.caps
            if proto is Proto.SMTP:
                server = await smtp_server.start(SmtpDeps(s, self.store, self.directory, self.tracker, caps.smtp,
                                                          self.clock))
            elif proto is Proto.IMAP:
                server = ImapServer(ImapDeps(s, self.store, self.directory, self.tls if s.tls.enabled else None,
                                             caps.imap, self.clock))
            elif proto is Proto.POP3:
                server = Pop3Server(Pop3Deps(s, self.store, self.directory, caps.pop3, self.clock))
            else:
                raise ValueError(f"no in-process client for {listener}")
            server = self._servers[proto] = server
        return server

    async def connect(self, listener: str, ip: str = "127.0.0.1") -> Any:
        """A new connection from `ip`, served as the listener serves an accepted one; the client
        has read the greeting (`client.greeting`; b"" or None if the server closed at once)."""
        handler = await self.handler(listener)
        pipe = Pipe((ip, next(_ports)), ("127.0.0.1", 25))
        conn = Connection(listener, pipe.reader, pipe.writer, new_session_id(), None, self.tracker.closing)  # type: ignore[arg-type]

        async def serve() -> None:
            try:
                await handler(conn)
            except (ConnectionError, TimeoutError):
                pass
            finally:
                await conn.close()

        task = asyncio.create_task(serve())
        self.tracker.add(task)
        client = _CLIENTS[listener](pipe, task)
        self._clients.append(client)
        if isinstance(client, ImapClient):
            with contextlib.suppress(ConnectionError):
                client.greeting = await client.read_one()
        elif isinstance(client, SmtpClient):
            client.greeting = await client.reply()
        else:
            client.greeting = await client.line()
        return client

    async def smtp(self, ip: str = "127.0.0.1", listener: str = "smtp") -> SmtpClient:
        return await self.connect(listener, ip)

    async def imap(self, ip: str = "127.0.0.1", *, login: str | None = None) -> ImapClient:
        c: ImapClient = await self.connect("imap", ip)
        if login is not None:
            await c.login(login)
        return c

    async def pop3(self, ip: str = "127.0.0.1") -> Pop3Client:
        return await self.connect("pop3", ip)

    async def add_user(self, address: str, password: str = PASSWORD, *, quota_messages: int | None = None,
                       quota_bytes: int | None = None) -> None:
        """What `mailcove user add` does: the directory entry, then the store account."""
        info = await self.directory.add_user(address, password)
        await self.store.create_account(info.address)
        if quota_bytes is not None or quota_messages is not None:
            s = self.settings.store
            await self.store.set_quota(info.address, quota_bytes if quota_bytes is not None else s.default_quota_bytes,
                                       quota_messages if quota_messages is not None else s.default_quota_messages)

    async def inbox(self, user: str, mailbox: str = "INBOX") -> list[bytes]:
        box = await self.store.get_mailbox(user, mailbox)
        return [await self.store.read_message(box.id, e.uid) for e in await self.store.index(box.id)]

    async def deliver(self, user: str, message: bytes) -> None:
        from mailcove.store.api import DeliveryTarget

        spool = self.store.new_spool()
        try:
            spool.write(message)
            await self.store.deliver(spool, [DeliveryTarget(user)])
        finally:
            spool.discard()

    async def aclose(self) -> None:
        # The clients hang up (the sweeper and the idle timers do not run without the clock).
        for c in self._clients:
            c.close()
        await self.tracker.drain(5.0)
        for server in self._servers.values():
            with contextlib.suppress(Exception):
                await server.aclose()
        await self.directory.close()
        await self.store.close()


@contextlib.asynccontextmanager
async def serve_in_process(
    tmp_path: Path,
    config: str = "",
    *,
    users: Sequence[str] = USERS,
    domain: str = "hamap.local",
    clock: FakeClock | None = None,
) -> AsyncIterator[InProcessServer]:
    """A server in this event loop: `config` is mailcove.toml's text (as serve_factory takes it;
    argon2 is cheap and [mailauth] off unless it says otherwise, TLS is off), with the
    domain and users made before any connection."""
    text = config if "hostname" in config else 'hostname = "mx1.hamap.local"\n' + config
    cfg = tmp_path / "mailcove.toml"
    cfg.write_text(text)
    data = tmp_path / "data"
    data.mkdir(mode=0o700, exist_ok=True)
    settings = load_settings(cfg, data_dir=str(data))
    given = tomllib.loads(text)
    if "argon2_time_cost" not in given.get("auth", {}):
        settings.auth.argon2_time_cost, settings.auth.argon2_memory_kib = 1, 1024  # cheap: behaviour, not cost
    if "enabled" not in given.get("mailauth", {}):
        # The clients here are 127.0.0.x addresses that may not relay: the inbound SPF/DKIM/DMARC
        # checks would look them up in the machine's DNS (those checks have their own tests).
        settings.mailauth.enabled = False
    settings.tls.enabled = False
    clock = clock or FakeClock()
    store = open_store(settings)
    await store.start()
    directory = open_directory(settings, store=store, clock=clock)
    await directory.start()
    server = InProcessServer(settings, store, directory, clock)
    try:
        if domain:
            await directory.add_domain(domain)
        for u in users:
            await server.add_user(u)
        yield server
    finally:
        await server.aclose()
