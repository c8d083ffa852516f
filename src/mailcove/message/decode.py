"""Content-Transfer-Encoding decoding for FETCH BINARY and body SEARCH."""

from __future__ import annotations

import binascii
import re
from typing import Any

from mailcove.message.model import Part

__all__ = ["UnknownTransferEncoding", "decode_body", "decode_transfer"]

_NOT_B64 = re.compile(rb"[^A-Za-z0-9+/]")
# One left-to-right pass over quoted-printable text (RFC 2045 section 6.7): an "=XX" octet, a soft
# line break ("=" and transport padding at the end of a line, or at the very end), or transport
# padding (trailing space/tab) before a line end. Anything else, a stray "=" included, stays.
_QP = re.compile(rb"=([0-9A-Fa-f]{2})|=[ \t]*(?:\r?\n|\Z)|(?<![ \t])[ \t]++(?=\r?\n|\Z)")


class UnknownTransferEncoding(ValueError):
    """The part uses a Content-Transfer-Encoding we cannot decode: IMAP answers NO [UNKNOWN-CTE]."""

    def __init__(self, encoding: str) -> None:
        super().__init__(f"unknown Content-Transfer-Encoding: {encoding!r}")
        self.encoding = encoding


def _b64(data: bytes) -> bytes:
    # Lenient like most MUAs: ignore anything outside the alphabet, stop at the first padding.
    cut = data.find(b"=")
    if cut >= 0:
        data = data[:cut]
    data = _NOT_B64.sub(b"", data)
    if len(data) % 4 == 1:
        data = data[:-1]
    data += b"=" * (-len(data) % 4)
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        return b""


def _qp_sub(m: re.Match[bytes]) -> bytes:
    hexpair = m.group(1)
    return bytes.fromhex(hexpair.decode("ascii")) if hexpair is not None else b""


def _qp(data: bytes) -> bytes:
    """Quoted-printable per RFC 2045 6.7: rule 3 (trailing whitespace is transport padding and is
    removed) and rule 5 (soft line breaks, also "= " with padding after the "="); line ends are
    kept as they are. `binascii.a2b_qp` keeps the padding, which changes BINARY[] sizes."""
    return _QP.sub(_qp_sub, data)


def decode_transfer(data: bytes, encoding: str) -> bytes:
    """Decode `data` from the (lower-cased) transfer encoding."""
    if encoding in ("7bit", "8bit", "binary", ""):
        return data
    if encoding == "base64":
        return _b64(data)
    if encoding == "quoted-printable":
        return _qp(data)
    raise UnknownTransferEncoding(encoding)


def decode_body(data: Any, part: Part) -> bytes:
    """The decoded body of `part`; `data` is the whole message (bytes or mmap)."""
    return decode_transfer(bytes(data[part.body_start : part.body_end]), part.cte)
