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

import dataclasses
import re
from typing import Any

from mailcove.message.addresses import parse_address_list
from mailcove.message.dates import parse_date
from mailcove.message.headers import decode_header_value, first_fields, is_field_run, parse_params
from mailcove.message.model import Envelope, MessageInfo, Part, new_envelope, new_info, new_part
from mailcove.message.subject import base_subject

__all__ = ["MAX_DEPTH", "MAX_PARTS", "scan", "scan_prefixed"]

MAX_DEPTH = 64
MAX_PARTS = 10_000
_COUNT_CHUNK = 1 << 20

_PAD = re.compile(rb"[ \t]*\r?(?:\n|$)")
_MSGID = re.compile(r"<([^<>]*)>")
_DEFAULT_CHARSET = ("charset", "us-ascii")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z\x80-\U0010ffff]+")

_ENVELOPE_FIELDS = frozenset(
    ("date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc", "in-reply-to", "message-id", "references")
)
_CONTENT_FIELDS = frozenset(
    ("content-type", "content-transfer-encoding", "content-id", "content-description", "content-md5",
     "content-disposition", "content-language", "content-location")
)
_MESSAGE_FIELDS = _CONTENT_FIELDS | _ENVELOPE_FIELDS


def count_lf(buf: Any, start: int, end: int) -> int:
    """Number of LF bytes in ``buf[start:end]`` without copying all of a large mmap at once."""
    if isinstance(buf, bytes):
        return buf.count(b"\n", start, end)
    n = 0
    for a in range(start, end, _COUNT_CHUNK):
        n += buf[a : min(a + _COUNT_CHUNK, end)].count(b"\n")
    return n


def _msgids(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    # str.split() splits on exactly the characters re's \s matches in a str pattern (str.isspace).
    return tuple(["".join(m.split()) for m in _MSGID.findall(value)])


def envelope_from_fields(fields: dict[str, str]) -> Envelope:
    g = fields.get
    from_ = parse_address_list(g("from"))
    return new_envelope(
        g("date"), g("subject"), from_, parse_address_list(g("sender")) or from_,
        parse_address_list(g("reply-to")) or from_, parse_address_list(g("to")), parse_address_list(g("cc")),
        parse_address_list(g("bcc")), g("in-reply-to"), g("message-id"),
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
               want_envelope: bool = False) -> tuple[Part, dict[str, str]]:
        """Scan one entity (a message or a body part) occupying ``buf[start:end]``."""
        self.parts += 1
        f, body_start = first_fields(self.buf, start, end, _MESSAGE_FIELDS if want_envelope else _CONTENT_FIELDS)
        g = f.get

        ctype_raw = g("content-type")
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
            params = (*params, _DEFAULT_CHARSET)

        disposition = None
        disposition_params: tuple[tuple[str, str], ...] = ()
        disp_raw = g("content-disposition")
        if disp_raw is not None:
            d, disposition_params = parse_params(disp_raw)
            disposition = d or None
        cte_raw = g("content-transfer-encoding")
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

        lang = g("content-language")
        part = new_part(start, body_start, end, ctype, subtype, params, g("content-id"), g("content-description"),
                        encoding, g("content-md5"), disposition, disposition_params,
                        _language(lang) if lang else (), g("content-location"), lines, parts, message, envelope,
                        truncated)
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
    return new_info(size, root, env, subject, base_subject(subject), parse_date(env.date), mids[0] if mids else None,
                    _msgids(env.in_reply_to), _msgids(g("references")), g("from"), g("to"), g("cc"), g("bcc"),
                    sc.parts, sc.truncated)


def scan(data: Any) -> MessageInfo:
    """Scan a whole message (bytes or mmap) into its metadata. Never raises: should anything go
    wrong on hostile input, the message is described as one text/plain body."""
    try:
        return _scan(data)
    except Exception:  # pragma: no cover - a safety net; tests call _scan to see real errors
        size = len(data)
        return MessageInfo(size=size, root=Part(0, 0, size, params=(("charset", "us-ascii"),)),
                           envelope=Envelope(), truncated=True)


# A header longer than this is not copied to check a rewritten header (see scan_prefixed).
HEAD_CHECK_MAX = 1 << 20


def scan_prefixed(prefix: bytes, body: Any, skip: int = 0) -> MessageInfo:
    """``scan(prefix + body[skip:])`` without building that concatenation when ``body`` is large
    (an mmap of a 50 MB file): how the store describes a message it keeps as received with header
    lines served in front of it (store.api.MessagePrefix).

    The body is scanned alone and every offset moved, which gives the same result whenever the
    bytes in front change nothing the scanner reads. For a prefix of whole header fields that the
    scanner does not read (Return-Path, Received, Authentication-Results) and skip 0 that always
    holds: those fields join the body's field run, which ends where it ended. A prefix that
    replaces the body's own header block (skip > 0) is checked on the header alone, both ways;
    only when the two differ (a rewrite of Subject or Content-Type) is the concatenation built."""
    if not prefix and not skip:
        return scan(body)
    if len(body) <= HEAD_CHECK_MAX:
        return scan(prefix + bytes(body[skip:]))
    delta = len(prefix) - skip
    if not skip and _transparent(prefix):
        return shift(scan(body), delta)
    _, end = first_fields(body, 0, len(body), frozenset())
    if skip <= end <= HEAD_CHECK_MAX:
        head = bytes(body[:end])
        if shift(scan(head), delta) == scan(prefix + head[skip:]):
            return shift(scan(body), delta)
    return scan(prefix + bytes(body[skip:]))


def _transparent(prefix: bytes) -> bool:
    """Whole header fields, none of them one the scanner reads."""
    return is_field_run(prefix) and not first_fields(prefix, 0, len(prefix), _MESSAGE_FIELDS)[0]


def shift(info: MessageInfo, delta: int) -> MessageInfo:
    """The description of the same message with ``delta`` more bytes in front of its body: the
    root's header still starts at 0, every other offset moves."""
    return dataclasses.replace(info, size=info.size + delta, root=_shift_part(info.root, delta, root=True))


def _shift_part(p: Part, d: int, root: bool = False) -> Part:
    return dataclasses.replace(
        p,
        header_start=0 if root else p.header_start + d,
        body_start=p.body_start + d,
        body_end=p.body_end + d,
        parts=tuple(_shift_part(c, d) for c in p.parts),
        message=None if p.message is None else _shift_part(p.message, d),
    )
