"""The asyncio side of SMTP: the listener handler and the local submit socket.

The only module of the SMTP package that touches net/: `make_handler` gives `mailcove serve` one
handler per listener (smtp, submission, submissions), all sharing one `SmtpService` (connection
counts and sending limits are per process, not per port). The handler object also owns the
submit socket `mailcove sendmail` talks to, and the sweeper task that applies timeouts and
shutdown to idle sessions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import socket
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailcove.core.errors import MailError
from mailcove.delivery import DeliveryPlan, Trace, qualify, resolve
from mailcove.directory.api import Alias, Invalid, Local
from mailcove.net.limits import ConnectionCounter, RequestDeadline
from mailcove.net.listeners import Connection, new_session_id
from mailcove.proto.smtp.params import PathError, check_mailbox
from mailcove.smtp.session import SmtpService, SmtpSession

if TYPE_CHECKING:
    from mailcove.app import ServerContext

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
        super().__init__(ctx.settings, ctx.store, ctx.directory, ctx.connections.smtp)
        self.queue_runner = getattr(ctx, "queue", None)
        self.mailauth = getattr(ctx, "mailauth", None)
        self.sweeper = asyncio.ensure_future(self.sweep())
        self.submit: SubmitServer | None = None
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
            service.submit = SubmitServer(service, Path(path), ctx.settings.smtp.submit_socket_mode)
            await service.submit.start()
    return SmtpHandler(service, listener)


# --- local submission: `mailcove sendmail` ------------------------------------------------------

MAX_LINE = 64 * 1024
CHUNK = 256 * 1024


def _err(code: int, enhanced: str, text: str) -> bytes:
    return f"ERR {code} {enhanced} {' '.join(text.split())}\r\n".encode("utf-8", "replace")


class SubmitServer:
    """A Unix socket any local user may write to (like Postfix's postdrop). The kernel tells us
    who is on the other end (SO_PEERCRED), so the trace header names the real Unix user and a
    user cannot pretend to be another one in it.

        C: SUBMIT <size> <sender|-> <recipient> [<recipient> ...]\\r\\n  then <size> bytes
        S: OK <ids>\\r\\n  once stored durably (local copies and queue entry in one commit)
        S: ERR <code> <enhanced> <text>\\r\\n  nothing stored

    "-" as sender means <user>@<hostname>; a bare name is qualified like a bare recipient. A
    sender that is not the caller's own, from a caller not in [smtp] trusted_users, is accepted
    with Sendmail's X-Authentication-Warning: header. Recipients are resolved like RCPT TO
    (aliases, plus-addresses); unknown local users are refused before anything is stored. Remote
    recipients go to the outbound queue: a local user may send anywhere, as with sendmail, within
    the per-user hourly limits ([smtp] send_messages_per_hour, send_recipients_per_hour; over
    them ERR 451 4.7.1, which `mailcove sendmail` turns into exit code 75).

    The request line must arrive within [smtp] command_timeout of connecting, and the message
    within data_timeout plus one second per min_data_rate bytes (and never data_timeout without a
    byte), as over SMTP: past either, ERR 421 4.4.2 and the connection is closed. `sendmail` reads
    the whole message before it connects, so only a client that stalls on purpose is cut. Each
    local user counts as one client for the connection caps: at most [smtp] max_connections_per_ip
    connections of one user at a time, max_connections of all users (the socket's own count, apart
    from the network's); past them ERR 421 4.7.0 at once."""

    def __init__(self, service: SmtpService, path: Path, mode: int) -> None:
        self.service = service
        self.path = path
        self.mode = mode
        self._server: asyncio.AbstractServer | None = None
        smtp = service.settings.smtp
        self.connections = ConnectionCounter(smtp.max_connections, smtp.max_connections_per_ip)

    async def start(self) -> None:
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(path))
                probe.close()
                raise OSError(f"{path}: another server is listening on this submit socket")
            except (ConnectionRefusedError, FileNotFoundError):
                path.unlink()
            finally:
                probe.close()
        self._server = await asyncio.start_unix_server(self._accepted, path=str(path), limit=MAX_LINE + 2)
        os.chmod(path, self.mode)
        log.info("local submission socket %s (mode %o)", path, self.mode)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sid = new_session_id()
        slog = logging.LoggerAdapter(log.getChild("submit"), {"session": sid})
        sock = writer.get_extra_info("socket")
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
            try:
                user = pwd.getpwuid(uid).pw_name
            except KeyError:
                user = f"uid{uid}"
            key = f"uid:{uid}"
            if not self.connections.try_add(key):
                slog.info("local submission by %s refused: %s", user, self.connections.describe(key))
                reply = _err(421, "4.7.0", f"too many connections from local user {user}, try again later")
            else:
                try:
                    reply = await self._serve(reader, user, uid, sid, slog)
                except TimeoutError:
                    slog.info("local submission by %s timed out", user)
                    reply = _err(421, "4.4.2", "timeout, closing connection")
                finally:
                    self.connections.remove(key)
            writer.write(reply)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            slog.info("client went away")
        except Exception:
            slog.exception("local submission failed")
            with contextlib.suppress(Exception):
                writer.write(_err(451, "4.3.0", "local error"))
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, user: str, uid: int, sid: str, slog: logging.LoggerAdapter[Any]
    ) -> bytes:
        svc = self.service
        s = svc.settings.smtp
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), s.command_timeout)
        except asyncio.LimitOverrunError:
            return _err(500, "5.5.2", "request line too long")
        words = line.decode("utf-8", "replace").split()
        if len(words) < 4 or words[0].upper() != "SUBMIT" or not words[1].isdigit():
            return _err(501, "5.5.4", "usage: SUBMIT <size> <sender|-> <recipient> ...")
        size = int(words[1])
        if s.max_message_bytes and size > s.max_message_bytes:
            return _err(552, "5.3.4", f"message of {size} bytes exceeds {s.max_message_bytes}")
        sender = f"{user}@{svc.hostname}" if words[2] == "-" else ("" if words[2] == "<>" else words[2])
        if sender and "@" not in sender:
            sender = await qualify(svc.directory, sender, svc.hostname)  # `sendmail -f cron`
        rcpts = list(dict.fromkeys(words[3:]))
        if s.max_recipients and len(rcpts) > s.max_recipients:
            return _err(452, "4.5.3", f"too many recipients (limit {s.max_recipients})")
        try:
            if sender:
                check_mailbox(sender)
        except PathError:
            return _err(553, "5.1.7", f"bad sender address {sender[:80]!r}")
        warning = ""
        if words[2] != "-" and not await self._may_set_sender(user, uid, sender):
            # Sendmail's authwarnings: accepted, but a reader can tell who really sent it.
            warning = f"X-Authentication-Warning: {svc.hostname}: {user} set sender to {sender or '<>'} using -f\r\n"
            slog.info("local user %s (uid %d) set sender to <%s> using -f", user, uid, sender)
        plan = DeliveryPlan()
        for r in rcpts:
            target = await qualify(svc.directory, r, svc.hostname)
            res = await resolve(svc.directory, target)
            if isinstance(res, Invalid):
                return _err(550, "5.1.1", f"<{r}>: {res.reason}")
            plan.add(res)
        # The check and the count in one step (no await between): parallel submissions cannot all
        # pass before any is counted. A request counts once accepted here, even if storing fails.
        key = f"local:{user}"
        if not svc.messages_rate.allows(key) or not svc.rcpts_rate.allows(key, plan.count):
            slog.info("local submission by %s refused: over [smtp] send_messages_per_hour or "
                      "send_recipients_per_hour", user)
            return _err(451, "4.7.1", f"sending limit exceeded for local user {user} (messages or recipients per "
                        "hour), try again later")
        svc.messages_rate.add(key)
        svc.rcpts_rate.add(key, plan.count)
        spool = svc.store.new_spool()
        try:
            trace = Trace((
                f"Received: from local user {user} (uid {uid})\r\n\tby {svc.hostname} (mailcove) with local"
                f" id {sid};\r\n\t{svc.date()}\r\n{warning}"
            ).encode("utf-8", "replace"))
            remaining = size
            loop = asyncio.get_running_loop()
            deadline = RequestDeadline(s.data_timeout, s.min_data_rate)
            deadline.begin(loop.time())
            while remaining:
                wait = min(s.data_timeout, deadline.remaining(loop.time()))
                if wait <= 0:
                    raise TimeoutError
                chunk = await asyncio.wait_for(reader.read(min(CHUNK, remaining)), wait)
                deadline.add(len(chunk))
                if not chunk:
                    raise asyncio.IncompleteReadError(b"", remaining)
                spool.write(chunk)
                remaining -= len(chunk)
            try:
                result = await plan.submit(svc.store, spool, trace, sender=sender, auth_user=f"local:{user}",
                                           client="local")
            except MailError as exc:
                slog.info("local submission by %s refused: %s %s %s", user, exc.code, exc.enhanced, exc.text)
                return _err(exc.code, exc.enhanced, exc.text)
        finally:
            with contextlib.suppress(Exception):
                spool.discard()
        ids = [f"{r.user}:{r.uid}" for r in result.local]
        if result.queue_id is not None:
            ids.append(f"queue:{result.queue_id}")
            svc.queued()
        slog.info("local submission by %s (uid %d) from=<%s> size=%d %s", user, uid, sender, size, " ".join(ids))
        return f"OK {' '.join(ids)}\r\n".encode()

    async def _may_set_sender(self, user: str, uid: int, sender: str) -> bool:
        """May this local user send as `sender` without a warning? A trusted user ([smtp]
        trusted_users, and the server's own user) may name anyone; others their own address:
        their name at the hostname or at the domain a bare name is qualified with, or an address
        the directory delivers to their account (system users: the account is the Unix name)."""
        svc = self.service
        if uid == os.geteuid() or user in svc.settings.smtp.trusted_users:
            return True
        if not sender:
            return False  # the null sender is a bounce's: the mail system's, not a user's
        qualified = await qualify(svc.directory, user, svc.hostname)
        mine = {user.lower(), f"{user}@{svc.hostname}".lower(), qualified.lower()}
        if sender.lower() in mine:
            return True
        res = await resolve(svc.directory, sender)
        targets = res.targets if isinstance(res, Alias) else (res,)
        return any(isinstance(t, Local) and t.user.lower() in mine for t in targets)
