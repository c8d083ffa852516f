"""FETCH serialisers over the parsed message model: ENVELOPE, BODY, BODYSTRUCTURE (RFC 9051 §7.5.2)
and the header-field filter behind BODY[HEADER.FIELDS (...)] / HEADER.FIELDS.NOT.

Header-derived strings in `MessageInfo` are raw (8-bit bytes kept via surrogateescape) and go out
as their original bytes, as Dovecot sends them: quoted when they are 7-bit (or valid UTF-8 for a
UTF-8 session), a literal otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mailcove.message.model import Address, Envelope, MessageInfo, Part
from mailcove.proto.imap.responses import nstring, string

__all__ = ["body", "bodystructure", "envelope", "filter_header_fields"]


def _ns(value: str | None, utf8: bool) -> bytes:
    return nstring(None if value is None else value.encode("utf-8", "surrogateescape"), utf8)


def _s(value: str, utf8: bool) -> bytes:
    return string(value.encode("utf-8", "surrogateescape"), utf8)


def _addresses(addrs: tuple[Address, ...], utf8: bool) -> bytes:
    if not addrs:
        return b"NIL"
    return b"(" + b"".join(
        b"(" + _ns(a.name, utf8) + b" " + _ns(a.adl, utf8) + b" " + _ns(a.mailbox, utf8) + b" " +
        _ns(a.host, utf8) + b")" for a in addrs) + b")"


def envelope(env: Envelope, utf8: bool = False) -> bytes:
    """``(date subject from sender reply-to to cc bcc in-reply-to message-id)``."""
    return b"(" + b" ".join((
        _ns(env.date, utf8), _ns(env.subject, utf8), _addresses(env.from_, utf8), _addresses(env.sender, utf8),
        _addresses(env.reply_to, utf8), _addresses(env.to, utf8), _addresses(env.cc, utf8),
        _addresses(env.bcc, utf8), _ns(env.in_reply_to, utf8), _ns(env.message_id, utf8),
    )) + b")"


def _params(params: Iterable[tuple[str, str]], utf8: bool) -> bytes:
    items = [_s(k, utf8) + b" " + _s(v, utf8) for k, v in params]
    return b"(" + b" ".join(items) + b")" if items else b"NIL"


def _ext_common(part: Part, utf8: bool) -> list[bytes]:
    """body-fld-dsp SP body-fld-lang SP body-fld-loc."""
    dsp = b"NIL" if part.disposition is None else (
        b"(" + _s(part.disposition, utf8) + b" " + _params(part.disposition_params, utf8) + b")")
    if not part.language:
        lang = b"NIL"
    elif len(part.language) == 1:
        lang = _s(part.language[0], utf8)
    else:
        lang = b"(" + b" ".join(_s(x, utf8) for x in part.language) + b")"
    return [dsp, lang, _ns(part.location, utf8)]


def _part(part: Part, ext: bool, utf8: bool, depth: int = 0) -> bytes:
    if part.type == "multipart" and part.parts:
        out = b"".join(_part(c, ext, utf8, depth + 1) for c in part.parts) + b" " + _s(part.subtype, utf8)
        if ext:
            out += b" " + b" ".join([_params(part.params, utf8), *_ext_common(part, utf8)])
        return b"(" + out + b")"
    typ, sub = part.type, part.subtype
    if typ == "multipart":
        # a multipart without parts (no boundary found): Dovecot describes it as text/plain
        typ, sub = "text", "plain"
    fields = [_s(typ, utf8), _s(sub, utf8), _params(part.params, utf8), _ns(part.id, utf8),
              _ns(part.description, utf8), _s(part.encoding or "7bit", utf8), b"%d" % part.size]
    if part.message is not None and typ == "message":
        env = part.message.envelope or part.envelope or Envelope()
        fields += [envelope(env, utf8), _part(part.message, ext, utf8, depth + 1), b"%d" % part.lines]
    elif typ == "text":
        fields.append(b"%d" % part.lines)
    if ext:
        fields += [_ns(part.md5, utf8), *_ext_common(part, utf8)]
    return b"(" + b" ".join(fields) + b")"


def bodystructure(info: MessageInfo, utf8: bool = False) -> bytes:
    """FETCH BODYSTRUCTURE value (with extension data)."""
    return _part(info.root, True, utf8)


def body(info: MessageInfo, utf8: bool = False) -> bytes:
    """FETCH BODY value (BODYSTRUCTURE without extension data)."""
    return _part(info.root, False, utf8)


_FIELD_LINE = re.compile(rb"([^:\s]+)[ \t]*:")


def filter_header_fields(header: bytes, names: Iterable[str], exclude: bool = False) -> bytes:
    """BODY[HEADER.FIELDS (names)] (``exclude`` for .NOT): the matching fields with their
    continuation lines, in message order, then the blank line (RFC 9051 §6.4.5).

    For .NOT the blank line is the message's own, so a message without one (header only, no
    separator) gets none, as Dovecot answers; HEADER.FIELDS always ends with one."""
    wanted = {n.lower().encode("ascii", "replace") for n in names}
    out: list[bytes] = []
    keep = False
    has_blank_line = False
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            has_blank_line = True
            break
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        m = _FIELD_LINE.match(line)
        keep = bool(m) and ((m.group(1).lower() in wanted) != exclude)  # type: ignore[union-attr]
        if keep:
            out.append(line)
    if has_blank_line or not exclude:
        out.append(b"\r\n")
    return b"".join(out)
