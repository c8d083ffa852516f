"""Small response-encoding helpers the session needs beyond proto.imap's builders: strings as
atom / quoted / literal, mailbox names in the client's encoding, flag lists, dates."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

from mailcove.proto.imap import utf7

_SAFE_ATOM = re.compile(rb"[!#$&'+-Z^-z|}~]+")  # ATOM-CHAR minus a few that confuse clients
_QUOTABLE = re.compile(rb'[^\r\n\x00"\\]*')
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def quoted_or_literal(data: bytes, *, utf8: bool = False) -> bytes:
    """A `string`: quoted when it can be (7-bit, or UTF-8 for rev2 clients), else a literal."""
    if len(data) < 1024 and b"\r" not in data and b"\n" not in data and b"\x00" not in data and (
        utf8 or data.isascii()
    ):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def nstring(data: bytes | None, *, utf8: bool = False) -> bytes:
    return b"NIL" if data is None else quoted_or_literal(data, utf8=utf8)


def astring(data: bytes, *, utf8: bool = False) -> bytes:
    if data and _SAFE_ATOM.fullmatch(data) and data.upper() != b"NIL":
        return data
    return quoted_or_literal(data, utf8=utf8)


def mailbox_name(name: str, utf8: bool) -> bytes:
    """A store name (Unicode, '/' separated) as the client sees it: UTF-8 for rev2 / UTF8=ACCEPT
    clients, modified UTF-7 otherwise. Always quoted (clients cope best with that)."""
    raw = name.encode("utf-8") if utf8 else utf7.encode(name).encode("ascii")
    return quoted_or_literal(raw, utf8=utf8)


def flag_list(flags: Iterable[str]) -> bytes:
    return b"(" + " ".join(sorted(flags)).encode("utf-8", "surrogateescape") + b")"


def internaldate(ts: float) -> bytes:
    """``"17-Jul-1996 02:44:25 +0000"`` (stored as UTC)."""
    t = time.gmtime(ts)
    return b'"%2d-%s-%04d %02d:%02d:%02d +0000"' % (
        t.tm_mday, _MONTHS[t.tm_mon - 1].encode(), t.tm_year, t.tm_hour, t.tm_min, t.tm_sec
    )
