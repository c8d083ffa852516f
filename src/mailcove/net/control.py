"""The local control socket: durable local delivery for `mailcove deliver` (an LDA, like
dovecot-lda) and later `mailcove sendmail`, while the server runs.

Wire protocol (one request at a time per connection, any number of requests):

    C: DELIVER <size> <recipient> [<recipient> ...]\\r\\n      (LF alone is accepted too)
    C: <exactly size bytes of message>
    S: OK <user>:<mailbox_id>:<uid> [...]\\r\\n             (after the store's deliver() returned,
                                                          i.e. after fsync)
    S: ERR <code> <enhanced> <text>\\r\\n                  (SMTP-style codes: 4xx temporary)

    C: PING\\r\\n        S: OK pong\\r\\n
    C: QUIT\\r\\n        S: OK bye\\r\\n  (then the server closes)

Recipients are store account names ("a@hamap.local"), one copy per recipient, one commit for
all of them. A request line longer than MAX_LINE, a bad size, too many recipients or a size
over the limit get an ERR and the connection is closed (the framing cannot be trusted any more);
a delivery the store refuses (no such account, quota, disk full) gets an ERR and the connection
stays usable. The socket file is mode 0600 inside the 0700 data dir: only the server's own user
(and root) may deliver through it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from mailcove.core.errors import MailError
from mailcove.net.listeners import ConnectionTracker, new_session_id

log = logging.getLogger("mailcove.control")

MAX_LINE = 64 * 1024
CHUNK = 64 * 1024

# deliver(source, recipients) -> list of (user, mailbox_id, uid). `source` is whatever
# `new_spool()` returned, filled and finished.
DeliverFn = Callable[[Any, Sequence[str]], Awaitable[list[tuple[str, int, int]]]]


class ControlProtocolError(Exception):
    def __init__(self, code: int, enhanced: str, text: str) -> None:
        self.code, self.enhanced, self.text = code, enhanced, text
        super().__init__(f"{code} {enhanced} {text}")


class ControlTimeout(Exception):
    """The message did not arrive within its deadline."""


def _err(code: int, enhanced: str, text: str) -> bytes:
    text = " ".join(text.split())  # one line, always
    return f"ERR {code} {enhanced} {text}\r\n".encode("utf-8", "replace")


class ControlServer:
    def __init__(
        self,
        path: Path,
        deliver: DeliverFn,
        new_spool: Callable[[], Any],
        tracker: ConnectionTracker,
        *,
        max_message_bytes: int,
        max_recipients: int,
        command_timeout: float = 300.0,
        data_timeout: float = 180.0,
        min_data_rate: int = 500,
    ) -> None:
        self.path = path
        # Deadlines as the SMTP listeners have ([smtp] settings): even a trusted local caller that
        # stops mid-request must not hold a session and a spool for ever.
        self._command_timeout = command_timeout
        self._data_timeout = data_timeout
        self._min_rate = min_data_rate
        self._deliver = deliver
        self._new_spool = new_spool
        self._tracker = tracker
        self._max_bytes = max_message_bytes
        self._max_rcpts = max_recipients
        self._server: asyncio.AbstractServer | None = None
        self._sock: socket.socket | None = None

    def bind(self) -> None:
        """Bind now (with the TCP listeners, before anything is served). A stale socket file
        left by a killed server is replaced; a live server on it is an error."""
        path = self.path
        if path.exists() or path.is_symlink():
            if _socket_answers(path):
                raise OSError(f"{path}: another mailcove server is running on this control socket")
            path.unlink()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            old = os.umask(0o177)  # created 0600 with no window where it is wider
            try:
                with _short_path(path) as short:
                    s.bind(short)
            finally:
                os.umask(old)
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

    def remove_socket(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tracker.add(task)
        sid = new_session_id()
        slog = logging.LoggerAdapter(log, {"session": sid})
        try:
            await self._serve(reader, writer, slog)
        except (ConnectionError, asyncio.IncompleteReadError):
            slog.info("client went away")
        except Exception:
            slog.exception("control session failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, slog: logging.LoggerAdapter[Any]
    ) -> None:
        while True:
            # Shutdown stops new requests; a request already being read or delivered finishes.
            if self._tracker.closing.is_set():
                writer.write(_err(421, "4.3.2", "server shutting down"))
                await writer.drain()
                return
            try:
                line = await asyncio.wait_for(reader.readuntil(b"\n"), self._command_timeout)
            except TimeoutError:
                writer.write(_err(421, "4.4.2", "timeout waiting for a request"))
                await writer.drain()
                slog.info("no complete request within %.0f s", self._command_timeout)
                return
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    slog.info("incomplete request line")
                return
            except asyncio.LimitOverrunError:
                writer.write(_err(500, "5.5.2", f"request line longer than {MAX_LINE} bytes"))
                await writer.drain()
                slog.info("request line too long")
                return
            words = line.decode("utf-8", "replace").split()
            verb = words[0].upper() if words else ""
            if verb == "PING":
                writer.write(b"OK pong\r\n")
                await writer.drain()
                continue
            if verb == "QUIT":
                writer.write(b"OK bye\r\n")
                await writer.drain()
                return
            if verb != "DELIVER":
                writer.write(_err(500, "5.5.1", f"unknown command {verb[:20]!r}; expected DELIVER, PING or QUIT"))
                await writer.drain()
                return
            try:
                size, rcpts = self._parse_deliver(words[1:])
            except ControlProtocolError as exc:
                writer.write(_err(exc.code, exc.enhanced, exc.text))
                await writer.drain()
                slog.info("rejected request: %s", exc)
                return
            try:
                reply = await self._receive_and_deliver(reader, size, rcpts, slog)
            except ControlTimeout:
                writer.write(_err(421, "4.4.2", "timeout receiving the message"))
                await writer.drain()
                return
            writer.write(reply)
            await writer.drain()

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, size: int, spool: Any) -> None:
        remaining = size
        while remaining:
            chunk = await reader.read(min(CHUNK, remaining))
            if not chunk:
                raise asyncio.IncompleteReadError(b"", remaining)
            spool.write(chunk)
            remaining -= len(chunk)

    def _parse_deliver(self, args: list[str]) -> tuple[int, list[str]]:
        if len(args) < 2:
            raise ControlProtocolError(501, "5.5.4", "usage: DELIVER <size> <recipient> [<recipient> ...]")
        if not args[0].isdigit():
            raise ControlProtocolError(501, "5.5.4", f"size {args[0][:20]!r} is not a number")
        size = int(args[0])
        if size > self._max_bytes:
            raise ControlProtocolError(552, "5.3.4", f"message of {size} bytes exceeds {self._max_bytes}")
        rcpts = list(dict.fromkeys(args[1:]))
        if len(rcpts) > self._max_rcpts:
            raise ControlProtocolError(452, "4.5.3", f"too many recipients (limit {self._max_rcpts})")
        return size, rcpts

    async def _receive_and_deliver(
        self, reader: asyncio.StreamReader, size: int, rcpts: list[str], slog: logging.LoggerAdapter[Any]
    ) -> bytes:
        spool = self._new_spool()
        try:
            # The size is announced, so the whole deadline is known up front.
            allowed = self._data_timeout + (size / self._min_rate if self._min_rate > 0 else 0.0)
            try:
                await asyncio.wait_for(self._read_body(reader, size, spool), allowed)
            except TimeoutError:
                slog.info("message of %d bytes not received within %.0f s", size, allowed)
                raise ControlTimeout() from None
            spool.finish()
            try:
                results = await self._deliver(spool, rcpts)
            except MailError as exc:
                slog.info("delivery to %s refused: %s %s %s", ",".join(rcpts), exc.code, exc.enhanced, exc.text)
                return _err(exc.code, exc.enhanced, exc.text)
            except Exception as exc:
                slog.exception("delivery to %s failed", ",".join(rcpts))
                return _err(451, "4.3.0", f"local error: {type(exc).__name__}")
        finally:
            # The store adopts (renames) a spooled file it committed; whatever is left is ours.
            with contextlib.suppress(Exception):
                spool.discard()
        tokens = " ".join(f"{user}:{mbox}:{uid}" for user, mbox, uid in results)
        slog.info("delivered %d bytes to %s", size, tokens)
        return f"OK {tokens}\r\n".encode()


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
    """No server is listening on the control socket."""


class ControlClient:
    """Blocking client (the CLI is synchronous). One connection, any number of deliveries."""

    def __init__(self, path: Path, timeout: float = 300.0) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            _connect(self._sock, path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            self._sock.close()
            raise ControlUnavailable(str(exc)) from None
        except OSError:
            self._sock.close()
            raise
        self._file = self._sock.makefile("rb")

    def deliver(self, message: bytes, recipients: Sequence[str]) -> str:
        """Returns the reply line without CRLF ("OK ..." or "ERR ...")."""
        header = f"DELIVER {len(message)} {' '.join(recipients)}\r\n".encode()
        self._sock.sendall(header + message)
        return self._read_line()

    def ping(self) -> bool:
        self._sock.sendall(b"PING\r\n")
        return self._read_line() == "OK pong"

    def _read_line(self) -> str:
        line = self._file.readline(MAX_LINE + 2)
        if not line:
            raise ConnectionError("control socket closed without a reply")
        return line.decode("utf-8", "replace").rstrip("\r\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
            self._sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
