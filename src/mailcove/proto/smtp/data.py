"""The DATA body: finding its end and undoing dot-stuffing, in bulk.

Only CRLF "." CRLF ends the data (RFC 5321 section 4.1.1.4). A bare LF or bare CR next to a dot
("\\n.\\n", "\\r.\\r", "\\n.\\r\\n", "\\r\\n.\\n", ...) is message content, never the end: reading
those as an end is the SMTP smuggling class (CVE-2023-51764 and relatives), where two servers
disagree about where one message stops and the next begins.

The decoder never loops over lines in Python: it searches the buffer with bytes.find and unstuffs
with bytes.replace. Across chunk boundaries it holds back at most four bytes, the longest proper
prefix of the terminator that the chunk can end with, so a terminator or a stuffed dot split over
two reads is still recognised, and memory stays bounded whatever the line lengths are."""

from __future__ import annotations

_END = b"\r\n.\r\n"
_STUFFED = b"\r\n.."
_UNSTUFFED = b"\r\n."
# Proper prefixes of the terminator a chunk may end with, longest first.
_PREFIXES = (b"\r\n.\r", b"\r\n.", b"\r\n", b"\r")


class DotDecoder:
    __slots__ = ("_pending", "_strip", "done")

    def __init__(self) -> None:
        # The data starts at the beginning of a line: pretend a CRLF came before it, so a stuffed
        # dot or the terminator on the very first line is found by the same search, then drop
        # those two bytes from the output.
        self._pending = b"\r\n"
        self._strip = 2
        self.done = False

    def feed(self, chunk: bytes) -> tuple[bytes, bytes | None]:
        """Returns (unstuffed message bytes, None) while the data continues, or (the last
        message bytes, the bytes after the terminator) when the end was found."""
        data = self._pending + chunk if self._pending else chunk
        end = data.find(_END)
        if end >= 0:
            body = data[: end + 2]  # the final line's CRLF belongs to the message
            rest = data[end + 5 :]
            self._pending = b""
            self.done = True
            return self._out(body), rest
        keep = 0
        for p in _PREFIXES:
            if data.endswith(p):
                keep = len(p)
                break
        if keep:
            self._pending = data[-keep:]
            data = data[:-keep]
        else:
            self._pending = b""
        return self._out(data), None

    def _out(self, data: bytes) -> bytes:
        if _STUFFED in data:
            data = data.replace(_STUFFED, _UNSTUFFED)
        if self._strip:
            n = min(self._strip, len(data))
            data = data[n:]
            self._strip -= n
        return data


def dot_stuff(message: bytes) -> bytes:
    """Client role: the DATA body for `message`, with the terminator. A message not ending in
    CRLF gets one, and every bare CR or LF becomes CRLF first, so no receiver can find a
    terminator we did not mean (the smuggling class again, seen from the sending side)."""
    if b"\r" in message or b"\n" in message:
        message = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if message.startswith(b"."):
        message = b"." + message
    message = message.replace(b"\r\n.", b"\r\n..")
    if message and not message.endswith(b"\r\n"):
        message += b"\r\n"
    return message + b".\r\n"
