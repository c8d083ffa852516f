"""Local injection: one protocol, one server, one client, for both local sockets.

The control socket (`<data_dir>/control.sock`, mode 0600 in the 0700 data dir: the server's own
user and root) takes an LDA's deliveries (`mailcove deliver`) and submissions; the submit socket
(`[smtp] submit_socket`, mode 0666 by default, like Postfix's postdrop) takes any local user's
submissions (`mailcove sendmail`). Both speak this, one request at a time, any number of requests
per connection:

    C: DELIVER <size> <account> [<account> ...]\\r\\n      then exactly <size> bytes
       (an LDA: stored as given for each store account, no trace added)
    C: SUBMIT <size> <sender|-|<>> <recipient> [...]\\r\\n   then exactly <size> bytes
       (sendmail: resolved like RCPT TO, local copies and queue entry in one commit; "-" is the
       caller's own address)
    S: OK <ids>\\r\\n                         once stored durably
    S: ERR <code> <enhanced> <text>\\r\\n     nothing stored (SMTP codes: 4xx temporary)

    C: PING\\r\\n   S: OK pong\\r\\n            C: QUIT\\r\\n   S: OK bye\\r\\n (then the server closes)

LF alone ends a request line too. The kernel names the caller (SO_PEERCRED), so a trace header
built from `Peer` cannot be forged. A request the server refuses before reading its message (bad
framing, a line over MAX_LINE, a size or recipient count over the limit, an unknown recipient),
and a deadline passed, get an ERR and the connection is closed: the framing cannot be trusted
any more. A refusal after the message was read (quota, disk) leaves the connection usable.

Deadlines are the SMTP listeners' ([smtp] command_timeout for the request line; for the message
data_timeout plus one second per min_data_rate bytes, and never data_timeout without a byte):
even a trusted caller that stalls must not hold a session and a spool for ever.

What a request does is not decided here: the server is given one handler per verb
(delivery.local.LocalInjection), and a request can be run in process with the same handler when
no server runs. `LocalReply` is the one result type: the reply line, parsed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import socket
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mailcove.core.clock import SYSTEM_CLOCK, Clock
from mailcove.net.limits import ConnectionCounter, RequestDeadline
from mailcove.net.listeners import ConnectionTracker, new_session_id

MAX_LINE = 64 * 1024
CHUNK = 256 * 1024


class LocalReply(str):
    """A reply of this protocol, as its line without CRLF ("OK <ids>", "ERR <code> <enhanced>
    <text>") and parsed: what the server sends, what the client returns, what an in-process
    request returns."""

    __slots__ = ()

    @classmethod
    def success(cls, text: str = "") -> LocalReply:
        return cls(f"OK {text}".rstrip())

    @classmethod
    def error(cls, code: int, enhanced: str, text: str) -> LocalReply:
        return cls(f"ERR {code} {enhanced} {' '.join(text.split())}")  # one line, always

    @classmethod
    def parse(cls, line: str) -> LocalReply:
        """A line read from a server; anything not in the protocol's form is a temporary error."""
        line = line.rstrip("\r\n")
        if line == "OK" or line.startswith("OK "):
            return cls(line)
        parts = line.split(" ", 3)
        if len(parts) >= 3 and parts[0] == "ERR" and parts[1].isdigit() and len(parts[1]) == 3:
            return cls(line)
        return cls.error(451, "4.3.0", line or "no reply from the server")

    @property
    def ok(self) -> bool:
        return self.startswith("OK")

    @property
    def code(self) -> int:
        return 250 if self.ok else int(self.split(" ", 2)[1])

    @property
    def enhanced(self) -> str:
        return "2.0.0" if self.ok else self.split(" ", 3)[2]

    @property
    def text(self) -> str:
        parts = self.split(" ", 1 if self.ok else 3)
        return parts[-1] if len(parts) == (2 if self.ok else 4) else ""

    def wire(self) -> bytes:
        return f"{self}\r\n".encode("utf-8", "replace")


class ProtocolError(Exception):
    def __init__(self, code: int, enhanced: str, text: str) -> None:
        self.reply = LocalReply.error(code, enhanced, text)
        super().__init__(self.reply)


@dataclass(frozen=True, slots=True)
class Request:
    """DELIVER or SUBMIT, with the size of the message that follows."""

    verb: str
    size: int
    recipients: tuple[str, ...]
    sender: str | None = None  # SUBMIT: None for "-" (the caller's own address), "" the null sender

    @classmethod
    def deliver(cls, size: int, recipients: Sequence[str]) -> Request:
        return cls("DELIVER", size, tuple(dict.fromkeys(recipients)))

    @classmethod
    def submit(cls, size: int, sender: str | None, recipients: Sequence[str]) -> Request:
        return cls("SUBMIT", size, tuple(dict.fromkeys(recipients)), sender)

    @classmethod
    def parse(cls, verb: str, args: Sequence[str]) -> Request:
        if verb == "DELIVER":
            if len(args) < 2:
                raise ProtocolError(501, "5.5.4", "usage: DELIVER <size> <recipient> [<recipient> ...]")
            if not args[0].isdigit():
                raise ProtocolError(501, "5.5.4", f"size {args[0][:20]!r} is not a number")
            return cls.deliver(int(args[0]), args[1:])
        if len(args) < 3 or not args[0].isdigit():
            raise ProtocolError(501, "5.5.4", "usage: SUBMIT <size> <sender|-> <recipient> ...")
        sender = None if args[1] == "-" else ("" if args[1] == "<>" else args[1])
        return cls.submit(int(args[0]), sender, args[2:])

    def line(self) -> bytes:
        words = [self.verb, str(self.size)]
        if self.verb == "SUBMIT":
            words.append("-" if self.sender is None else (self.sender or "<>"))
        return (" ".join([*words, *self.recipients]) + "\r\n").encode("utf-8")


@dataclass(frozen=True, slots=True)
class Peer:
    """Who sent the request: from the kernel (SO_PEERCRED) on a socket; this process's own user
    for a request run in process (`session` None)."""

    uid: int
    user: str
    session: str | None = None

    @classmethod
    def me(cls) -> Peer:
        uid = os.getuid()
        return cls(uid, _user_name(uid))


class MessageBody(Protocol):
    """The message that follows a request; a handler reads it once it has accepted the request."""

    size: int

    async def read_into(self, sink: Any) -> None:
        """Write all of it to `sink` (a store Spool). Raises TimeoutError past the deadline and
        asyncio.IncompleteReadError when the caller goes away."""


class BytesBody:
    """A message already in memory: a request run in process."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    async def read_into(self, sink: Any) -> None:
        sink.write(self.data)


Handler = Callable[[Request, Peer, MessageBody], Awaitable[LocalReply]]


@dataclass(frozen=True, slots=True)
class Limits:
    max_message_bytes: int  # 0: none
    max_recipients: int  # 0: none
    command_timeout: float = 300.0
    data_timeout: float = 180.0
    min_data_rate: int = 500


class _SocketBody:
    def __init__(self, reader: asyncio.StreamReader, size: int, limits: Limits, clock: Clock = SYSTEM_CLOCK) -> None:
        self._reader = reader
        self.size = size
        self._limits = limits
        self._clock = clock
        self.consumed = size == 0

    async def read_into(self, sink: Any) -> None:
        clock = self._clock
        deadline = RequestDeadline(self._limits.data_timeout, self._limits.min_data_rate)
        deadline.begin(clock.monotonic())
        remaining = self.size
        while remaining:
            wait = min(self._limits.data_timeout, deadline.remaining(clock.monotonic()))
            if wait <= 0:
                raise TimeoutError
            chunk = await clock.wait_for(self._reader.read(min(CHUNK, remaining)), wait)
            if not chunk:
                raise asyncio.IncompleteReadError(b"", remaining)
            deadline.add(len(chunk))
            sink.write(chunk)
            remaining -= len(chunk)
        self.consumed = True


class LocalServer:
    """One Unix socket speaking this protocol, with a handler per verb it takes."""

    def __init__(
        self,
        path: Path,
        handlers: dict[str, Handler],
        tracker: ConnectionTracker,
        limits: Limits,
        *,
        mode: int = 0o600,
        connections: ConnectionCounter | None = None,
        logger: str = "mailcove.control",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.path = path
        self._clock = clock  # the request line's and the message's deadlines
        self.mode = mode
        self._handlers = handlers
        self._tracker = tracker
        self._limits = limits
        self._connections = connections
        self._log = logging.getLogger(logger)
        self._server: asyncio.AbstractServer | None = None
        self._sock: socket.socket | None = None

    def bind(self) -> None:
        """Bind now (the control socket: with the TCP listeners, before anything is served and
        before privileges are dropped). A stale socket file left by a killed server is replaced;
        a live server on it is an error."""
        path = self.path
        if path.exists() or path.is_symlink():
            if _socket_answers(path):
                raise OSError(f"{path}: another mailcove server is running on this socket")
            path.unlink()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            old = os.umask(0o177)  # created 0600 with no window where it is wider
            try:
                with _short_path(path) as short:
                    s.bind(short)
            finally:
                os.umask(old)
            if self.mode != 0o600:
                os.chmod(path, self.mode)  # a socket meant for other local users
            s.listen(128)
            s.setblocking(False)
        except BaseException:
            s.close()
            raise
        self._sock = s

    async def start(self) -> None:
        if self._sock is None:
            self.bind()
        self._server = await asyncio.start_unix_server(self._accepted, sock=self._sock, limit=MAX_LINE + 2)

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    def close_inherited(self) -> None:
        """Close this process's copy of the bound socket without removing its file: a worker
        process that does not serve the control socket (net/workers.py)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def remove_socket(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def close(self) -> None:
        self.stop_accepting()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        self.remove_socket()

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tracker.add(task)
        sid = new_session_id()
        slog = logging.LoggerAdapter(self._log, {"session": sid})
        counted = False
        key = ""
        try:
            peer = _peer(writer, sid)
            key = f"uid:{peer.uid}"
            if self._connections is not None:
                if not self._connections.try_add(key):
                    slog.info("connection of local user %s refused: %s", peer.user, self._connections.describe(key))
                    writer.write(LocalReply.error(421, "4.7.0", f"too many connections from local user {peer.user},"
                                                  " try again later").wire())
                    await writer.drain()
                    return
                counted = True
            await self._serve(reader, writer, peer, slog)
        except (ConnectionError, asyncio.IncompleteReadError):
            slog.info("client went away")
        except Exception:
            slog.exception("local session failed")
        finally:
            if counted and self._connections is not None:
                self._connections.remove(key)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer,
        slog: logging.LoggerAdapter[Any],
    ) -> None:
        limits = self._limits
        while True:
            # Shutdown stops new requests; a request already being read or stored finishes.
            if self._tracker.closing.is_set():
                writer.write(LocalReply.error(421, "4.3.2", "server shutting down").wire())
                await writer.drain()
                return
            try:
                line = await self._clock.wait_for(reader.readuntil(b"\n"), limits.command_timeout)
            except TimeoutError:
                slog.info("no complete request within %.0f s", limits.command_timeout)
                writer.write(LocalReply.error(421, "4.4.2", "timeout, closing connection").wire())
                await writer.drain()
                return
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    slog.info("incomplete request line")
                return
            except asyncio.LimitOverrunError:
                slog.info("request line too long")
                writer.write(LocalReply.error(500, "5.5.2", "request line too long").wire())
                await writer.drain()
                return
            words = line.decode("utf-8", "replace").split()
            verb = words[0].upper() if words else ""
            if verb in ("PING", "QUIT"):
                writer.write(LocalReply.success("pong" if verb == "PING" else "bye").wire())
                await writer.drain()
                if verb == "QUIT":
                    return
                continue
            body: _SocketBody | None = None
            try:
                handler = self._handlers.get(verb)
                if handler is None:
                    known = ", ".join(self._handlers)
                    raise ProtocolError(500, "5.5.1", f"unknown command {verb[:20]!r}; expected {known}, PING or QUIT")
                request = Request.parse(verb, words[1:])
                if limits.max_message_bytes and request.size > limits.max_message_bytes:
                    raise ProtocolError(552, "5.3.4", f"message of {request.size} bytes exceeds "
                                        f"{limits.max_message_bytes}")
                if limits.max_recipients and len(request.recipients) > limits.max_recipients:
                    raise ProtocolError(452, "4.5.3", f"too many recipients (limit {limits.max_recipients})")
                body = _SocketBody(reader, request.size, limits, self._clock)
                reply = await handler(request, peer, body)
            except ProtocolError as exc:
                slog.info("request refused: %s", exc.reply)
                reply = exc.reply
            except TimeoutError:
                slog.info("message not received within its deadline")
                reply = LocalReply.error(421, "4.4.2", "timeout, closing connection")
            except (ConnectionError, asyncio.IncompleteReadError):
                raise
            except Exception as exc:
                slog.exception("%s failed", verb)
                reply = LocalReply.error(451, "4.3.0", f"local error: {type(exc).__name__}")
            writer.write(reply.wire())
            await writer.drain()
            if body is None or not body.consumed:
                return  # refused before (or while) its message was read: the framing is lost


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid{uid}"


def _peer(writer: asyncio.StreamWriter, session: str) -> Peer:
    sock = writer.get_extra_info("socket")
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return Peer(uid, _user_name(uid), session)


# sun_path holds 108 bytes; a deep data dir (pytest's tmp dirs, /var/lib/... on some systems)
# can be longer. Linux resolves /proc/self/fd/N/name through an open directory fd, which is short.
_SUN_PATH_MAX = 100


@contextlib.contextmanager
def _short_path(path: Path) -> Any:
    if len(os.fsencode(str(path))) < _SUN_PATH_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def _connect(sock: socket.socket, path: Path) -> None:
    try:
        with _short_path(path) as short:
            sock.connect(short)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise FileNotFoundError(exc.errno, exc.strerror, str(path)) from None


def _socket_answers(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        _connect(s, path)
        return True
    except OSError:
        return False
    finally:
        s.close()


# ---- client ---------------------------------------------------------------------------------


class ControlUnavailable(Exception):
    """No server is listening on the socket."""


class ControlClient:
    """The one client of both sockets, blocking (the CLI is synchronous). One connection, any
    number of requests."""

    def __init__(self, path: Path, timeout: float = 300.0) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            _connect(self._sock, path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            self._sock.close()
            raise ControlUnavailable(f"{path}: {exc.strerror or exc}") from None
        except OSError:
            self._sock.close()
            raise
        self._file = self._sock.makefile("rb")

    def send(self, request: Request, message: bytes) -> LocalReply:
        """One request and its message; the reply once the server has stored it (or refused)."""
        try:
            self._sock.sendall(request.line() + message)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the server read it all (a sending limit, say): its reply says why
        return self._read_reply()

    def deliver(self, message: bytes, recipients: Sequence[str]) -> LocalReply:
        return self.send(Request.deliver(len(message), recipients), message)

    def submit(self, message: bytes, sender: str | None, recipients: Sequence[str]) -> LocalReply:
        return self.send(Request.submit(len(message), sender, recipients), message)

    def ping(self) -> bool:
        self._sock.sendall(b"PING\r\n")
        return self._read_reply() == "OK pong"

    def _read_reply(self) -> LocalReply:
        try:
            line = self._file.readline(MAX_LINE + 2)
        except ConnectionResetError:
            line = b""
        if not line:
            raise ConnectionError("the server closed the connection without a reply")
        return LocalReply.parse(line.decode("utf-8", "replace"))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
            self._sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
