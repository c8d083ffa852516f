"""Modified UTF-7 for IMAP4rev1 mailbox names (RFC 3501 §5.1.3), strict in both directions.

Hand-written because the stdlib ``utf-7`` codec is the RFC 2152 variant (``+``/``/`` instead of
``&``/``,``, optional shifts, no canonical form) and accepts forms RFC 3501 forbids.
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["Utf7Error", "decode", "encode"]


class Utf7Error(ValueError):
    """Not canonical modified UTF-7."""


def encode(name: str) -> str:
    """Unicode -> modified UTF-7 (ASCII)."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            raw = "".join(run).encode("utf-16-be", "surrogatepass")
            out.append("&" + base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",") + "-")
            run.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def decode(text: str | bytes) -> str:
    """Modified UTF-7 -> Unicode; raises `Utf7Error` on anything non-canonical: 8-bit or
    control bytes, an unterminated shift, bad base64, padding bits set, a shifted run that
    encodes printable ASCII, two adjacent shifted runs, or broken UTF-16."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise Utf7Error("8-bit byte in a modified UTF-7 name") from None
    out: list[str] = []
    i = 0
    n = len(text)
    last_shift_end = -1
    while i < n:
        ch = text[i]
        if not 0x20 <= ord(ch) <= 0x7E:
            raise Utf7Error("non-printable character in a modified UTF-7 name")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = text.find("-", i + 1)
        if end < 0:
            raise Utf7Error("unterminated & shift")
        if end == i + 1:
            out.append("&")
            i = end + 1
            continue
        if last_shift_end == i:
            raise Utf7Error("adjacent shifted runs")
        b64 = text[i + 1:end]
        if len(b64) % 8 not in (0, 3, 6) or any(c in "/=" for c in b64):
            raise Utf7Error("bad base64 in shifted run")
        try:
            raw = base64.b64decode(b64.replace(",", "/") + "=" * (-len(b64) % 4), validate=True)
        except binascii.Error:
            raise Utf7Error("bad base64 in shifted run") from None
        if len(raw) % 2:
            raise Utf7Error("odd number of bytes in shifted run")
        # canonical form: the unused low bits of the last base64 character are zero
        if base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",") != b64:
            raise Utf7Error("non-zero padding bits in shifted run")
        try:
            s = raw.decode("utf-16-be")
        except UnicodeDecodeError:
            raise Utf7Error("broken UTF-16 in shifted run") from None
        if any(0x20 <= ord(c) <= 0x7E for c in s):
            raise Utf7Error("printable ASCII encoded in a shifted run")
        out.append(s)
        i = end + 1
        last_shift_end = i
    return "".join(out)
