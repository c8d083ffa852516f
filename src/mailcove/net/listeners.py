"""Binding, accepting and tracking connections.

Every socket of every listener is bound before any is served (`bind_all`), so a port that is in
use stops the start with nothing listening. Each accepted connection becomes a `Connection`
(streams, peer, session id, STARTTLS) handed to the protocol's handler in its own task; the
`ConnectionTracker` knows every such task so shutdown can stop accepting, let sessions finish
within the timeout, and cancel what is left."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import secrets
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mailcove.net.addresses import ListenAddress, ListenerPlan, resolve_bind_targets
from mailcove.net.port_holder import port_in_use_hint

log = logging.getLogger("mailcove.net")

BACKLOG = 512
# StreamReader limit: protocol cores keep their own (smaller) line limits; this only bounds what
# asyncio buffers before the handler reads it.
STREAM_LIMIT = 256 * 1024

_session_prefix = secrets.token_hex(2)
_session_counter = itertools.count(1)


def new_session_id() -> str:
    """Short, unique within this process and unlikely to repeat across restarts; grep-friendly."""
    return f"{_session_prefix}{next(_session_counter):06x}"


def new_session_prefix() -> None:
    """A forked worker process (net/workers.py) numbers its sessions apart from its siblings'."""
    global _session_prefix, _session_counter
    _session_prefix = secrets.token_hex(2)
    _session_counter = itertools.count(1)


class BindError(Exception):
    def __init__(self, listener: str, address: str, message: str) -> None:
        self.listener = listener
        self.address = address
        self.message = message
        super().__init__(f"listen.{listener}: {address}: {message}")


@dataclass
class BoundListener:
    name: str
    sockets: list[socket.socket]

    @property
    def addresses(self) -> list[str]:
        out = []
        for s in self.sockets:
            host, port = s.getsockname()[:2]
            out.append(f"[{host}]:{port}" if s.family == socket.AF_INET6 else f"{host}:{port}")
        return out


def bind_all(plans: list[ListenerPlan]) -> dict[str, BoundListener]:
    """Bind (and listen on) every address of every plan, or none: on the first failure the
    sockets bound so far are closed and BindError names the listener."""
    bound: dict[str, BoundListener] = {}
    try:
        for plan in plans:
            socks: list[socket.socket] = []
            bound[plan.name] = BoundListener(plan.name, socks)
            for addr in plan.addresses:
                socks.extend(_bind_address(plan.name, addr))
    except BaseException:
        for bl in bound.values():
            for s in bl.sockets:
                s.close()
        raise
    return bound


def _bind_address(name: str, addr: ListenAddress) -> list[socket.socket]:
    try:
        targets = resolve_bind_targets(addr)
    except OSError as exc:
        raise BindError(name, str(addr), f"cannot resolve: {exc.strerror or exc}") from None
    out: list[socket.socket] = []
    try:
        for family, sockaddr in targets:
            s = socket.socket(family, socket.SOCK_STREAM)
            out.append(s)
            # SO_REUSEADDR only lets us rebind over TIME_WAIT after a restart; a port another
            # process listens on is still refused with EADDRINUSE.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                s.bind(sockaddr)
                s.listen(BACKLOG)
            except OSError as exc:
                host, port = sockaddr
                shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
                reason = exc.strerror or str(exc)
                if exc.errno == errno.EACCES and sockaddr[1] < 1024:
                    reason += " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
                elif exc.errno == errno.EADDRINUSE:
                    reason += f"; {port_in_use_hint(name, int(sockaddr[1]))}"
                raise BindError(name, shown, reason) from None
            s.setblocking(False)
    except BaseException:
        for s in out:
            s.close()
        raise
    return out


class Connection:
    """One accepted client, as protocol handlers see it."""

    def __init__(
        self,
        listener: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        session_id: str,
        tls: TlsProvider | None,
        closing: asyncio.Event,
    ) -> None:
        self.listener = listener
        self.reader = reader
        self.writer = writer
        self.session_id = session_id
        self.peer: tuple[Any, ...] = writer.get_extra_info("peername") or ("?", 0)
        self.local: tuple[Any, ...] = writer.get_extra_info("sockname") or ("?", 0)
        self._tls = tls
        self.closing = closing  # set when the server shuts down: finish the command, say goodbye
        self.log = logging.LoggerAdapter(log.getChild(listener), {"session": session_id})

    @property
    def peer_ip(self) -> str:
        return str(self.peer[0])

    @property
    def is_tls(self) -> bool:
        return self.writer.get_extra_info("ssl_object") is not None

    @property
    def tls_available(self) -> bool:
        return self._tls is not None and self._tls.enabled

    async def start_tls(self, reply: bytes = b"") -> None:
        """Send `reply` (the protocol's "go ahead": SMTP 220, IMAP OK, POP3 +OK), then upgrade to
        TLS with the current certificate.

        Reading is paused *before* the reply goes out, so everything already buffered was sent
        by the client before it could have seen the reply: pipelined plaintext that must not be
        treated as if it came over TLS (CVE-2011-0411 class). That is discarded. Bytes arriving
        after the reply stay in the kernel until the TLS layer reads them (the ClientHello).
        Protocol cores must discard their own buffered input at the same point."""
        if self._tls is None or not self._tls.enabled:
            raise RuntimeError("TLS is not enabled")
        self.writer.transport.pause_reading()
        # StreamReader has no public way to drop its buffer; clearing it is the whole point here.
        self.reader._buffer.clear()  # type: ignore[attr-defined]
        if reply:
            self.writer.write(reply)
            await self.writer.drain()
        await asyncio.wait_for(
            self.writer.start_tls(self._tls.context, ssl_handshake_timeout=self._tls.handshake_timeout),
            self._tls.handshake_timeout + 1,
        )

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 5)


class TlsProvider:
    """What listeners need from net.tls.TlsHolder (a Protocol in spirit; kept concrete-free)."""

    enabled: bool
    handshake_timeout: float

    @property
    def context(self) -> ssl.SSLContext:  # pragma: no cover - interface
        raise NotImplementedError


Handler = Callable[[Connection], Awaitable[None]]


@dataclass
class ConnectionTracker:
    """Every live session task, so shutdown can wait for them and then cancel the rest."""

    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, task: asyncio.Task[Any]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, timeout: float) -> int:
        """Ask sessions to finish, wait up to `timeout`, cancel the rest. Returns how many were
        cancelled."""
        self.closing.set()
        pending = set(self.tasks)
        if pending:
            _done, pending = await asyncio.wait(pending, timeout=timeout)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
        return len(pending)


class Listener:
    """Serves one bound listener with one protocol handler."""

    def __init__(
        self,
        bound: BoundListener,
        handler: Handler,
        tracker: ConnectionTracker,
        *,
        tls: TlsProvider | None = None,
        implicit_tls: bool = False,
    ) -> None:
        self.bound = bound
        self.name = bound.name
        self._handler = handler
        self._tracker = tracker
        self._tls = tls
        self._implicit_tls = implicit_tls
        self._servers: list[asyncio.AbstractServer] = []

    async def start(self) -> None:
        ssl_ctx = None
        timeout = None
        if self._implicit_tls:
            if self._tls is None or not self._tls.enabled:
                raise RuntimeError(f"{self.name}: implicit TLS without TLS")
            # The handshake runs before the handler is called. The context given here is only
            # the first; its SNI callback moves each handshake to the holder's current one.
            ssl_ctx, timeout = self._tls.context, self._tls.handshake_timeout
        for s in self.bound.sockets:
            server = await asyncio.start_server(
                self._accepted, sock=s, limit=STREAM_LIMIT, backlog=BACKLOG, ssl=ssl_ctx, ssl_handshake_timeout=timeout
            )
            self._servers.append(server)

    def stop_accepting(self) -> None:
        for server in self._servers:
            server.close()

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tracker.add(task)
        sid = new_session_id()
        conn = Connection(self.name, reader, writer, sid, self._tls, self._tracker.closing)
        conn.log.info("connect from %s", _fmt_peer(conn.peer))
        reason = "closed"
        try:
            await self._handler(conn)
        except (ConnectionError, ssl.SSLError, TimeoutError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        except asyncio.CancelledError:
            reason = "cancelled at shutdown"
            raise
        except Exception:
            reason = "handler error"
            conn.log.exception("session failed")
        finally:
            conn.log.info("disconnect (%s)", reason)
            await conn.close()


def _fmt_peer(peer: tuple[Any, ...]) -> str:
    host, port = peer[0], peer[1] if len(peer) > 1 else 0
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"

