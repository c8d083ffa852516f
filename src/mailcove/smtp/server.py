"""The asyncio side of SMTP: the listener handler and the local submit socket.

The only module of the SMTP package that touches net/: `start(SmtpDeps(...))` gives `mailcove
serve` one `SmtpServer`, whose `handler(listener)` serves each of smtp, submission and
submissions; they share one `SmtpService` (connection counts and sending limits are per process,
not per port). The server also owns the submit socket `mailcove sendmail` talks to
(net/control.py's protocol and server, SUBMIT only, handled by delivery/local.py with this
service's per-user sending limits), and the sweeper task that applies timeouts and shutdown to
idle sessions."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailcove.delivery.local import LocalInjection
from mailcove.net.control import Limits, LocalServer
from mailcove.net.limits import ConnectionCounter
from mailcove.net.listeners import Connection
from mailcove.smtp.session import SmtpService, SmtpSession

if TYPE_CHECKING:
    from mailcove.config import Settings
    from mailcove.core.clock import Clock
    from mailcove.directory.api import Directory
    from mailcove.mailauth import InboundChecker
    from mailcove.net.listeners import ConnectionTracker
    from mailcove.queue import QueueRunner
    from mailcove.store.api import MailStore

log = logging.getLogger("mailcove.smtp")


@dataclass(frozen=True)
class SmtpDeps:
    """What the SMTP listeners are built from (app.py fills it in)."""

    settings: Settings
    store: MailStore
    directory: Directory
    tracker: ConnectionTracker  # the submit socket's sessions drain with the listeners'
    connections: ConnectionCounter  # one counter for the three SMTP listeners
    clock: Clock
    queue: QueueRunner | None = None  # woken after queueing, when the server runs one
    mailauth: InboundChecker | None = None  # inbound SPF/DKIM/DMARC, None when [mailauth] is off


class _ConnIO:
    """SessionIO over a net Connection, plus the TLS details for Received:."""

    __slots__ = ("closing", "conn", "log", "peer_ip", "session_id")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.peer_ip = conn.peer_ip
        self.session_id = conn.session_id
        self.log = conn.log
        self.closing = conn.closing

    @property
    def is_tls(self) -> bool:
        return self.conn.is_tls

    @property
    def tls_available(self) -> bool:
        return self.conn.tls_available

    async def start_tls(self, reply: bytes = b"") -> None:
        await self.conn.start_tls(reply)

    def tls_info(self) -> tuple[str, str, int] | None:
        obj = self.conn.writer.get_extra_info("ssl_object")
        if obj is None:
            return None
        cipher = obj.cipher() or ("?", "?", 0)
        return (obj.version() or "?", cipher[0], cipher[2])


class SmtpHandler:
    def __init__(self, service: SmtpService, listener: str) -> None:
        self.service = service
        self.listener = listener

    async def __call__(self, conn: Connection) -> None:
        session = SmtpSession(self.service, _ConnIO(conn), self.listener, conn.reader, conn.writer)
        try:
            await session.run()
        finally:
            session.release()


class SmtpServer(SmtpService):
    """SmtpService plus the tasks and sockets that live as long as the server."""

    def __init__(self, deps: SmtpDeps) -> None:
        super().__init__(deps.settings, deps.store, deps.directory, deps.connections, clock=deps.clock)
        self.queue_runner = deps.queue
        self.mailauth = deps.mailauth
        self.sweeper = asyncio.ensure_future(self.sweep())
        self.submit: LocalServer | None = None
        self._closed = False

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.sweeper.cancel()
        if self.submit is not None:
            await self.submit.close()


    def handler(self, listener: str) -> SmtpHandler:
        return SmtpHandler(self, listener)


async def start(deps: SmtpDeps) -> SmtpServer:
    """The SMTP server of this process, its submit socket (when configured) already serving."""
    server = SmtpServer(deps)
    path = deps.settings.smtp.submit_socket
    if path is not None:
        server.submit = submit_socket(server, Path(path), deps.tracker)
        await server.submit.start()
        log.info("local submission socket %s (mode %o)", path, server.submit.mode)
    return server


def submit_socket(service: SmtpService, path: Path, tracker: ConnectionTracker) -> LocalServer:
    """The socket any local user may write to (like Postfix's postdrop), SUBMIT only. The kernel
    tells the server who is on the other end (SO_PEERCRED), so the trace names the real Unix user.
    It has the SMTP listeners' limits: [smtp] max_message_bytes and max_recipients, the request
    line within command_timeout, the message within data_timeout plus one second per
    min_data_rate bytes (ERR 421 4.4.2 past either), at most max_connections_per_ip connections
    per local user and max_connections in all (the socket's own count, apart from the network's;
    ERR 421 4.7.0), and per user the hourly sending limits (send_messages_per_hour,
    send_recipients_per_hour; ERR 451 4.7.1, which `mailcove sendmail` turns into exit 75)."""
    s = service.settings.smtp

    def within_limits(user: str, recipients: int) -> bool:
        key = f"local:{user}"
        if not service.messages_rate.allows(key) or not service.rcpts_rate.allows(key, recipients):
            return False
        service.messages_rate.add(key)
        service.rcpts_rate.add(key, recipients)
        return True

    injection = LocalInjection(service.settings, service.store, service.directory, limit=within_limits,
                               queued=service.queued)
    path.parent.mkdir(parents=True, exist_ok=True)
    return LocalServer(
        path,
        injection.handlers("SUBMIT"),
        tracker,
        Limits(s.max_message_bytes, s.max_recipients, s.command_timeout, s.data_timeout, s.min_data_rate),
        mode=s.submit_socket_mode,
        connections=ConnectionCounter(s.max_connections, s.max_connections_per_ip),
        logger="mailcove.smtp.submit",
        clock=service.clock,
    )


