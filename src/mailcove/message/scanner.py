"""The MIME scanner: one pass over the raw bytes, offsets for every entity.

Header blocks are split by regex over the buffer; bodies are never walked line by line: multipart
delimiters are located with ``find`` and line counts with ``bytes.count`` (chunked for mmap), so a
50 MB attachment costs a few C-level passes. Works on ``bytes`` or ``mmap.mmap``; only header
fields and short slices are copied.

Each multipart level searches only its own range for its own delimiter, and an enclosing
delimiter ends an inner part simply because the inner range stops there. The cost is the sum of
the nested multipart ranges, bounded by MAX_DEPTH passes in the worst (adversarial) case.

Boundary lines match as in the stdlib and RFC 2046 §5.1.1's BNF: ``--boundary`` then optional
``--``, then optional whitespace, then the line end. (Dovecot also accepts any trailing text;
where that matters, our answer can differ.)

Measured on the project machine (2 cores, Python 3.11) with
``.venv/bin/python -m mailcove.message.bench``: see that module's docstring for the figures.
"""

from __future__ import annotations

import re
from typing import Any

from mailcove.message.addresses import parse_address_list
from mailcove.message.dates import parse_date
from mailcove.message.headers import decode_header_value, parse_header_block, parse_params, raw_str, unfold
from mailcove.message.model import Envelope, MessageInfo, Part
from mailcove.message.subject import base_subject

__all__ = ["MAX_DEPTH", "MAX_PARTS", "scan"]

MAX_DEPTH = 64
MAX_PARTS = 10_000
_COUNT_CHUNK = 1 << 20

_PAD = re.compile(rb"[ \t]*\r?(?:\n|$)")
_MSGID = re.compile(r"<([^<>]*)>")
_WS = re.compile(r"\s+")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z\x80-\U0010ffff]+")

_ENVELOPE_FIELDS = frozenset(
    (b"date", b"subject", b"from", b"sender", b"reply-to", b"to", b"cc", b"bcc", b"in-reply-to", b"message-id",
     b"references")
)
_CONTENT_FIELDS = frozenset(
    (b"content-type", b"content-transfer-encoding", b"content-id", b"content-description", b"content-md5",
     b"content-disposition", b"content-language", b"content-location")
)


def count_lf(buf: Any, start: int, end: int) -> int:
    """Number of LF bytes in ``buf[start:end]`` without copying all of a large mmap at once."""
    if isinstance(buf, bytes):
        return buf.count(b"\n", start, end)
    n = 0
    for a in range(start, end, _COUNT_CHUNK):
        n += buf[a : min(a + _COUNT_CHUNK, end)].count(b"\n")
    return n


def _first_fields(fields: list[tuple[bytes, bytes]], wanted: frozenset[bytes]) -> dict[bytes, str]:
    """The wanted fields, unfolded, as raw strings. Dovecot uses the first occurrence of each field
    for ENVELOPE and BODYSTRUCTURE, and so do we."""
    out: dict[bytes, str] = {}
    for name, value in fields:
        key = name.lower()
        if key in wanted and key not in out:
            out[key] = raw_str(unfold(value))
    return out


def _msgids(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(_WS.sub("", m) for m in _MSGID.findall(value))


def envelope_from_fields(fields: dict[bytes, str]) -> Envelope:
    g = fields.get
    from_ = parse_address_list(g(b"from"))
    return Envelope(
        date=g(b"date"),
        subject=g(b"subject"),
        from_=from_,
        sender=parse_address_list(g(b"sender")) or from_,
        reply_to=parse_address_list(g(b"reply-to")) or from_,
        to=parse_address_list(g(b"to")),
        cc=parse_address_list(g(b"cc")),
        bcc=parse_address_list(g(b"bcc")),
        in_reply_to=g(b"in-reply-to"),
        message_id=g(b"message-id"),
    )


def _language(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    out = []
    for item in value.split(","):
        m = _TOKEN.match(item.strip())
        if m is not None:
            out.append(m.group(0))
    return tuple(out)


class _Scanner:
    __slots__ = ("buf", "parts", "truncated")

    def __init__(self, buf: Any) -> None:
        self.buf = buf
        self.parts = 0
        self.truncated = False

    def entity(self, start: int, end: int, depth: int, digest_child: bool = False,
               want_envelope: bool = False) -> tuple[Part, dict[bytes, str]]:
        """Scan one entity (a message or a body part) occupying ``buf[start:end]``."""
        self.parts += 1
        fields, body_start = parse_header_block(self.buf, start, end)
        wanted = _CONTENT_FIELDS | _ENVELOPE_FIELDS if want_envelope else _CONTENT_FIELDS
        f = _first_fields(fields, wanted)

        ctype_raw = f.get(b"content-type")
        params: tuple[tuple[str, str], ...] = ()
        if ctype_raw is None:
            ctype, subtype = ("message", "rfc822") if digest_child else ("text", "plain")
        else:
            main, params = parse_params(ctype_raw)
            ctype, _, subtype = main.partition("/")
            ctype, subtype = ctype.strip(), subtype.strip()
            if main.count("/") != 1 or not ctype or not subtype:
                # RFC 2045 §5.2: an unparsable Content-Type means text/plain (so do stdlib and Dovecot).
                ctype, subtype, params = "text", "plain", ()
        if ctype == "text" and not any(k == "charset" for k, _ in params):
            params = (*params, ("charset", "us-ascii"))

        disposition = None
        disposition_params: tuple[tuple[str, str], ...] = ()
        disp_raw = f.get(b"content-disposition")
        if disp_raw is not None:
            d, disposition_params = parse_params(disp_raw)
            disposition = d or None
        cte_raw = f.get(b"content-transfer-encoding")
        encoding = None
        if cte_raw is not None:
            m = _TOKEN.match(cte_raw)
            encoding = m.group(0) if m is not None else None

        parts: tuple[Part, ...] = ()
        message: Part | None = None
        envelope: Envelope | None = None
        lines = 0
        truncated = False
        if ctype == "multipart" or (ctype == "message" and subtype == "rfc822"):
            if depth >= MAX_DEPTH or self.parts >= MAX_PARTS:
                # Too deep or too many parts: keep the bytes, describe them as one opaque leaf.
                ctype, subtype, params = "application", "octet-stream", ()
                truncated = self.truncated = True
            elif ctype == "multipart":
                boundary = next((v for k, v in params if k == "boundary"), None)
                if boundary:
                    parts = self.children(body_start, end, boundary.encode("utf-8", "surrogateescape"), depth,
                                          subtype == "digest")
            else:
                message, inner = self.entity(body_start, end, depth + 1, want_envelope=True)
                envelope = envelope_from_fields(inner)
                lines = count_lf(self.buf, body_start, end)
        elif ctype == "text":
            lines = count_lf(self.buf, body_start, end)

        part = Part(
            header_start=start, body_start=body_start, body_end=end, type=ctype, subtype=subtype, params=params,
            id=f.get(b"content-id"), description=f.get(b"content-description"), encoding=encoding,
            md5=f.get(b"content-md5"), disposition=disposition, disposition_params=disposition_params,
            language=_language(f.get(b"content-language")), location=f.get(b"content-location"), lines=lines,
            parts=parts, message=message, envelope=envelope, truncated=truncated,
        )
        return part, f

    def children(self, start: int, end: int, boundary: bytes, depth: int, digest: bool) -> tuple[Part, ...]:
        buf = self.buf
        delim = b"--" + boundary
        dlen = len(delim)
        pad = _PAD.match
        # (delimiter line start, offset after its line end, is close-delimiter)
        marks: list[tuple[int, int, bool]] = []
        pos = start
        while pos < end:
            i = buf.find(delim, pos, end)
            if i < 0:
                break
            if i == start or buf[i - 1] == 10:
                j = i + dlen
                close = buf[j : j + 2] == b"--"
                m = pad(buf, j + 2 if close else j, end)
                if m is not None:
                    marks.append((i, m.end(), close))
                    if close:
                        break
                    pos = m.end()
                    continue
            pos = i + 1

        out: list[Part] = []
        for n, (_, part_start, close) in enumerate(marks):
            if close:
                break
            if n + 1 < len(marks):
                nxt = marks[n + 1][0]
                # The line break before a delimiter belongs to the delimiter (RFC 2046 §5.1.1).
                part_end = nxt - (2 if buf[nxt - 2 : nxt] == b"\r\n" else 1)
                part_end = max(part_end, part_start)
            else:
                part_end = end  # no close-delimiter: the last part runs to the end
            if self.parts >= MAX_PARTS:
                self.truncated = True
                break
            child, _ = self.entity(part_start, part_end, depth + 1, digest_child=digest)
            out.append(child)
        return tuple(out)


def _scan(data: Any) -> MessageInfo:
    size = len(data)
    sc = _Scanner(data)
    root, fields = sc.entity(0, size, 0, want_envelope=True)
    env = envelope_from_fields(fields)
    g = fields.get
    subject = None if env.subject is None else decode_header_value(env.subject)

    mids = _msgids(env.message_id)
    return MessageInfo(
        size=size, root=root, envelope=env, subject=subject, base_subject=base_subject(subject),
        date=parse_date(env.date), message_id=mids[0] if mids else None, in_reply_to=_msgids(env.in_reply_to),
        references=_msgids(g(b"references")), from_raw=g(b"from"), to_raw=g(b"to"),
        cc_raw=g(b"cc"), bcc_raw=g(b"bcc"), part_count=sc.parts, truncated=sc.truncated,
    )


def scan(data: Any) -> MessageInfo:
    """Scan a whole message (bytes or mmap) into its metadata. Never raises: should anything go
    wrong on hostile input, the message is described as one text/plain body."""
    try:
        return _scan(data)
    except Exception:  # pragma: no cover - a safety net; tests call _scan to see real errors
        size = len(data)
        return MessageInfo(size=size, root=Part(0, 0, size, params=(("charset", "us-ascii"),)),
                           envelope=Envelope(), truncated=True)
