"""Line-ending normalisation: bare LF and lone CR become CRLF, CRLF stays as it is.

Used once, when a message arrives through APPEND or an import, so that the stored size is exactly
what IMAP and POP3 serve (DESIGN.md §4). SMTP DATA keeps its bytes as received.
"""

from __future__ import annotations

__all__ = ["CrlfNormalizer", "is_crlf_clean", "to_crlf"]


def is_crlf_clean(data: bytes) -> bool:
    """True when every CR and every LF in `data` belongs to a CRLF pair."""
    pairs = data.count(b"\r\n")
    return data.count(b"\n") == pairs and data.count(b"\r") == pairs


def to_crlf(data: bytes) -> bytes:
    """Convert bare LF and lone CR line endings to CRLF; leave CRLF alone."""
    # The common case (already CRLF) must not allocate: counting is a C loop, replace() copies.
    if is_crlf_clean(data):
        return data
    # Collapsing everything to LF first makes "\r\r\n" come out as two line ends, as it should.
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


class CrlfNormalizer:
    """Incremental `to_crlf`: feed chunks, then call `finish()` once.

    The only context that crosses a chunk boundary is a CR that may be followed by LF, so a chunk's
    trailing CR is held back until the next byte (or the end) decides it.
    """

    __slots__ = ("_finished", "_pending_cr")

    def __init__(self) -> None:
        self._pending_cr = False
        self._finished = False

    def feed(self, chunk: bytes) -> bytes:
        if self._finished:
            raise ValueError("CrlfNormalizer.feed() after finish()")
        if not chunk:
            return b""
        if self._pending_cr:
            chunk = b"\r" + chunk
            self._pending_cr = False
        if chunk.endswith(b"\r"):
            self._pending_cr = True
            chunk = chunk[:-1]
        return to_crlf(chunk)

    def finish(self) -> bytes:
        self._finished = True
        if self._pending_cr:
            self._pending_cr = False
            return b"\r\n"
        return b""
