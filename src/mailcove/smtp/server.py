"""The asyncio side of SMTP: the listener handler and the local submit socket.

The only module of the SMTP package that touches net/: `make_handler` gives `mailcove serve` one
handler per listener (smtp, submission, submissions), all sharing one `SmtpService` (connection
counts and sending limits are per process, not per port). The handler object also owns the
submit socket `mailcove sendmail` talks to (net/control.py's protocol and server, SUBMIT only,
handled by delivery/local.py with this service's per-user sending limits), and the sweeper task
that applies timeouts and shutdown to idle sessions."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from mailcove.delivery.local import LocalInjection
from mailcove.net.control import Limits, LocalServer
from mailcove.net.limits import ConnectionCounter
from mailcove.net.listeners import Connection
from mailcove.smtp.session import SmtpService, SmtpSession

if TYPE_CHECKING:
    from mailcove.app import ServerContext
    from mailcove.net.listeners import ConnectionTracker

log = logging.getLogger("mailcove.smtp")
_SERVICE_KEY = "smtp"


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

    async def aclose(self) -> None:
        await self.service.aclose()


class _Service(SmtpService):
    """SmtpService plus the tasks and sockets that live as long as the server."""

    def __init__(self, ctx: ServerContext) -> None:
        super().__init__(ctx.settings, ctx.store, ctx.directory, ctx.connections.smtp, clock=ctx.clock)
        self.queue_runner = getattr(ctx, "queue", None)
        self.mailauth = getattr(ctx, "mailauth", None)
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


async def make_handler(ctx: ServerContext, listener: str) -> SmtpHandler:
    service = ctx.services.get(_SERVICE_KEY)
    if service is None:
        service = ctx.services[_SERVICE_KEY] = _Service(ctx)
        path = ctx.settings.smtp.submit_socket
        if path is not None:
            service.submit = submit_socket(service, Path(path), ctx.tracker)
            await service.submit.start()
            log.info("local submission socket %s (mode %o)", path, service.submit.mode)
    return SmtpHandler(service, listener)


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


