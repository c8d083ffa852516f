"""The client side, sans I/O: enough to pair with the server core in tests and to drive the
benchmark without poplib's per-line reads.

    cl = ClientConnection()
    wire = cl.send(b"RETR 1", multiline=True)   # queue the expected reply shape
    cl.receive_data(data)
    while (r := cl.next_response()) is not None: ...

Replies come back in the order the commands were sent, so pipelining is just sending several
commands before reading.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from mailcove.proto.pop3.stuffing import unstuff


@dataclass(frozen=True, slots=True)
class Response:
    ok: bool
    text: bytes  # the status line after "+OK"/"-ERR"/"+", without CRLF
    body: bytes | None = None  # a multi-line reply's data, unstuffed; None for single-line
    continuation: bool = False  # a "+ " SASL challenge

    @property
    def lines(self) -> list[bytes]:
        if not self.body:
            return []
        return self.body[:-2].split(b"\r\n") if self.body.endswith(b"\r\n") else self.body.split(b"\r\n")


class ClientError(ValueError):
    pass


class ClientConnection:
    def __init__(self, *, greeting: bool = True, max_status_line: int = 4096) -> None:
        self._buf = bytearray()
        self._expect: deque[bool] = deque([False] if greeting else [])
        self._max = max_status_line
        self._status: tuple[bool, bytes] | None = None  # a multi-line reply whose body is pending
        self._scan = 0

    def send(self, command: bytes, *, multiline: bool = False) -> bytes:
        """The wire form of a command, remembering whether its +OK reply is multi-line."""
        self._expect.append(multiline)
        return command + b"\r\n"

    def expect(self, multiline: bool = False) -> None:
        """Expect a reply to something sent without `send` (e.g. a SASL response line)."""
        self._expect.append(multiline)

    @property
    def waiting(self) -> int:
        return len(self._expect)

    def receive_data(self, data: bytes) -> None:
        self._buf += data

    def next_response(self) -> Response | None:
        buf = self._buf
        if self._status is None:
            nl = buf.find(b"\r\n")
            if nl < 0:
                if len(buf) > self._max:
                    raise ClientError("status line too long")
                return None
            line = bytes(buf[:nl])
            del buf[: nl + 2]
            if not self._expect:
                raise ClientError(f"unexpected reply {line[:80]!r}")
            multiline = self._expect.popleft()
            if line.startswith(b"+OK"):
                ok, text = True, line[3:].lstrip(b" ")
            elif line.startswith(b"-ERR"):
                return Response(False, line[4:].lstrip(b" "))
            elif line.startswith(b"+ ") or line == b"+":
                return Response(True, line[2:], continuation=True)
            else:
                raise ClientError(f"not a POP3 reply: {line[:80]!r}")
            if not multiline:
                return Response(True, text)
            self._status = (ok, text)
            self._scan = 0
        # The terminator is ".\r\n" at the start of a line; stuffing guarantees "\n.\r\n" never
        # occurs inside the data, so the first one found ends the reply.
        if buf.startswith(b".\r\n"):
            end, body = 3, b""
        else:
            idx = buf.find(b"\n.\r\n", self._scan)
            if idx < 0:
                self._scan = max(0, len(buf) - 3)
                return None
            end, body = idx + 4, unstuff(bytes(buf[: idx + 1]))
        del buf[:end]
        ok, text = self._status
        self._status = None
        self._scan = 0
        return Response(ok, text, body)
