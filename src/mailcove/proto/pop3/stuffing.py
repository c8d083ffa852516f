"""Byte-stuffing of multi-line POP3 replies (RFC 1939 section 3), in bulk.

A line of a multi-line reply that starts with "." gets one more "."; the reply ends with ".\\r\\n"
on a line of its own. Messages are streamed in chunks, so the stuffer remembers whether the last
chunk ended a line. The work per chunk is one `bytes.replace` (C speed), never a Python loop per
line.

A "line" here starts after every LF, not only after CRLF. For the CRLF messages the store keeps
this is the same thing; for a stored message with a bare LF it is what keeps clients that split on
LF (poplib, fetchmail) from reading ".\\r\\n" inside a message as its end, or eating a dot.
"""

from __future__ import annotations

TERMINATOR = b".\r\n"
_DOT = 0x2E
_LF = 0x0A
_CR = 0x0D


class DotStuffer:
    """Stuff one message body chunk by chunk: `feed()` each chunk, then `end()`."""

    __slots__ = ("_bol", "_cr", "_crlf")

    def __init__(self) -> None:
        self._bol = True  # the next byte starts a line (after any LF)
        self._crlf = True  # nothing yet, or the output so far ends with CRLF
        self._cr = False  # the last byte fed was CR

    def feed(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        out = chunk.replace(b"\n.", b"\n..")
        if self._bol and chunk[0] == _DOT:
            out = b"." + out
        last = chunk[-1]
        self._bol = last == _LF
        self._crlf = last == _LF and (chunk.endswith(b"\r\n") if len(chunk) > 1 else self._cr)
        self._cr = last == _CR
        return out

    def end(self) -> bytes:
        """The terminating line. It must be a line of its own after a CRLF (RFC 1939 section 3:
        clients look for CRLF "." CRLF), so a message whose last line lacks its CRLF, or ends
        with a bare LF, gets a CRLF first."""
        return TERMINATOR if self._crlf else b"\r\n" + TERMINATOR


def stuff(data: bytes) -> bytes:
    """A whole message, stuffed and terminated."""
    s = DotStuffer()
    return s.feed(data) + s.end()


def unstuff(body: bytes) -> bytes:
    """The inverse for a multi-line body without its terminating line (what a client does)."""
    out = body.replace(b"\n..", b"\n.")
    if out.startswith(b".."):
        out = out[1:]
    return out
