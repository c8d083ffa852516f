"""The client role of the SMTP core: commands out, replies in. For the outbound queue
(queue/, which sends with it) and for tests that pair a client core with the server core.

    c = ClientConnection()
    c.receive_data(greeting_bytes); ev = c.next_event()        # ServerReply(220 ...)
    sock.sendall(c.command("EHLO", "mx.example"))
    ...
    sock.sendall(c.data(message))                                # dot-stuffed, with CRLF.CRLF

Replies are parsed whole (multi-line "250-" continuations joined), with the enhanced code
split off when present. Lines are bounded, so a hostile server cannot grow memory."""

from __future__ import annotations

import re

from mailcove.proto.smtp.data import dot_stuff
from mailcove.proto.smtp.events import NEED_DATA, ServerReply, _NeedData
from mailcove.proto.smtp.replies import Reply

MAX_REPLY_LINE = 4096
MAX_REPLY_LINES = 100
_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}(?= |$)")


class ClientProtocolError(Exception):
    """The server sent something that is not an SMTP reply."""


class ClientConnection:
    def __init__(self) -> None:
        self._buf = bytearray()
        self._lines: list[str] = []

    def receive_data(self, data: bytes) -> None:
        self._buf += data

    def next_event(self) -> ServerReply | _NeedData:
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > MAX_REPLY_LINE:
                    raise ClientProtocolError("reply line too long")
                return NEED_DATA
            raw = bytes(self._buf[:nl]).rstrip(b"\r")
            del self._buf[: nl + 1]
            if len(raw) < 3 or not raw[:3].isdigit() or (len(raw) > 3 and raw[3:4] not in (b" ", b"-")):
                raise ClientProtocolError(f"not a reply line: {raw[:40]!r}")
            text = raw[4:].decode("utf-8", "replace")
            self._lines.append(text)
            if len(self._lines) > MAX_REPLY_LINES:
                raise ClientProtocolError("too many reply lines")
            if raw[3:4] == b"-":
                continue
            lines, self._lines = self._lines, []
            code = int(raw[:3])
            first = lines[0]
            m = _ENHANCED.match(first)
            enhanced = ""
            if m is not None and m.group(0)[0] == str(code)[0]:
                enhanced, first = m.group(0), first[m.end() :].lstrip(" ")
            return ServerReply(Reply(code, enhanced, first, tuple(lines[1:])), tuple(lines))

    @staticmethod
    def command(verb: str, arg: str = "") -> bytes:
        line = f"{verb} {arg}" if arg else verb
        if "\r" in line or "\n" in line:
            raise ValueError("line breaks in an SMTP command")
        return line.encode("utf-8") + b"\r\n"

    @staticmethod
    def data(message: bytes) -> bytes:
        return dot_stuff(message)
