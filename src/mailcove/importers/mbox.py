"""mbox files as Sendmail's mail.local, mutt, UW-IMAP and Dovecot write them: reading and writing.

Sans-IO: `read_mbox(buf)` takes the file's bytes (an mmap is fine) and yields `MboxMessage`s;
`write_message(...)` returns the bytes of one message for a file. No file or store access here.

Hand-written rather than Python's `mailbox.mbox` because that module decodes the `From ` line and
headers, rewrites line endings, always un-escapes `>From ` (mboxo, lossy) and splits on every
`From ` line, ignoring Content-Length; it cannot give back the exact bytes an IMAP client saw.
The splitter here is a few `bytes.find` calls per message (C speed on an mmap).

Rules (docs/import.md, "Mail"):

- A message starts at a `From ` line whose rest parses as `sender asctime-date` (Dovecot's test:
  a body line "From here on..." is not a separator). Lines end in LF, or CRLF when the file's
  first line does.
- Its end: `Content-Length:` is used only when it lands exactly on the next message's `From `
  line or on the end of the file (Dovecot writes it and does not escape body `From ` lines, so
  Dovecot's files need it); otherwise the message ends at the next separator line. The one line
  end just before the next `From ` line (the blank separator line) is not part of the message.
- `>From ` quoting: Dovecot 2.3 neither escapes nor un-escapes (checked with doveadm), so by
  default a `>From ` line stays as it is: the message is byte for byte what the old server served.
  `quoting="mboxrd"` removes one `>` from `>…>From ` lines, `"mboxo"` from `>From ` lines.
- Dovecot's metadata headers (`Status`, `X-Status`, `X-Keywords`, `X-UID`, `X-IMAPbase`, `X-IMAP`,
  `Content-Length`) are taken out of the message, as Dovecot hides them from IMAP; their values
  become flags, keywords, the UID and the mailbox's UIDVALIDITY/UIDNEXT. `X-UIDL` stays in the
  message; whether it was the old server's POP3 UIDL is importers/dovecot_uidl.py's to say.
- A UW-IMAP pseudo message (the first one, carrying `X-IMAP:`) only contributes its UIDVALIDITY.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

META_HEADERS = frozenset(
    {b"status", b"x-status", b"x-keywords", b"x-uid", b"x-imapbase", b"x-imap", b"content-length"}
)
QUOTINGS = ("none", "mboxrd", "mboxo")

_MONTHS = {m: i for i, m in enumerate(b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), start=1)}
# sender, then an asctime date: "Sat Nov 28 01:55:19 2026", optionally a zone before or after the year
_FROM_RE = re.compile(
    rb"From (\S*) +(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) +(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(\d{1,2})"
    rb" +(\d{1,2}):(\d{2})(?::(\d{2}))?(?: +[A-Za-z]{1,5}| +[-+]\d{4})? +(\d{4})(?: +[-+]\d{4})?(?: .*)?\r?$"
)
_MBOXRD_UNQUOTE = re.compile(rb"^>(>*From )", re.MULTILINE)
_MBOXO_UNQUOTE = re.compile(rb"^>(From )", re.MULTILINE)
_MBOXRD_QUOTE = re.compile(rb"^(>*From )", re.MULTILINE)
_MBOXO_QUOTE = re.compile(rb"^(From )", re.MULTILINE)
_STATUS_FLAGS = {ord("R"): "\\Seen"}
_XSTATUS_FLAGS = {ord("A"): "\\Answered", ord("F"): "\\Flagged", ord("T"): "\\Draft", ord("D"): "\\Deleted"}
_ATOM_BAD = re.compile(r'[\x00-\x20\x7f(){%*"\\\]]')
# bound on one header block, so a file without blank lines cannot make us scan it whole per message
MAX_HEADER = 1 << 20


@dataclass(slots=True)
class MboxMessage:
    data: bytes  # the message as IMAP serves it, in the file's line endings
    from_line: bytes  # without its line end
    internaldate: float | None
    uid: int | None = None
    flags: frozenset[str] = frozenset()
    offset: int = 0  # of the From line, for messages about bad input
    end: int = 0  # file offset just past this message's separator


@dataclass(slots=True)
class MboxBase:
    """X-IMAPbase (or X-IMAP) of the first message: the old server's UIDVALIDITY and last UID."""

    uidvalidity: int | None = None
    uidlast: int | None = None
    keywords: list[str] = field(default_factory=list)


def parse_from_line(line: bytes) -> float | None:
    """The date of a `From sender date` line as a Unix time (mbox dates are local time), or None
    when the line is not a separator."""
    m = _FROM_RE.match(line)
    if m is None:
        return None
    _sender, mon, day, hh, mm, ss, year = m.groups()
    try:
        return time.mktime(
            (int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss or 0), 0, 0, -1)
        )
    except (OverflowError, ValueError):
        return None


def from_line(sender: str, when: float) -> bytes:
    """`From sender asctime` in local time, as mail.local writes it."""
    return f"From {sender or 'MAILER-DAEMON'} {time.strftime('%a %b %e %H:%M:%S %Y', time.localtime(when))}".encode()


def newline_of(buf: bytes) -> bytes:
    end = buf.find(b"\n")
    return b"\r\n" if end > 0 and buf[end - 1 : end] == b"\r" else b"\n"


def header_fields(header: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(lowercased name, whole field with continuation lines and line ends)."""
    pos = 0
    n = len(header)
    while pos < n:
        end = header.find(b"\n", pos)
        end = n if end < 0 else end + 1
        # continuation lines start with space or tab
        while end < n and header[end : end + 1] in (b" ", b"\t"):
            nxt = header.find(b"\n", end)
            end = n if nxt < 0 else nxt + 1
        fld = header[pos:end]
        colon = fld.find(b":")
        name = fld[:colon].strip().lower() if colon > 0 else b""
        yield name, fld
        pos = end


def _value(fld: bytes) -> bytes:
    return fld[fld.find(b":") + 1 :].strip()


def _keywords(text: str) -> list[str]:
    return [k for k in re.split(r"[\s,]+", text) if k and not _ATOM_BAD.search(k) and not k.startswith("\\")]


class MboxReader:
    """Iterate the messages of one mbox file's bytes. `base` is filled from the first message;
    `problems` collects what was skipped or repaired, with file offsets."""

    def __init__(self, buf: bytes, *, quoting: str = "none") -> None:
        if quoting not in QUOTINGS:
            raise ValueError(f"quoting must be one of {', '.join(QUOTINGS)}")
        self.buf = buf
        self.quoting = quoting
        self.nl = newline_of(buf)
        self.base = MboxBase()
        self.problems: list[str] = []

    def _next_separator(self, pos: int) -> int:
        """Offset of the next valid `From ` line at or after `pos` that starts a line (len(buf) if none)."""
        buf = self.buf
        n = len(buf)
        while True:
            i = buf.find(b"\nFrom ", pos - 1 if pos > 0 else 0)
            if i < 0:
                return n
            start = i + 1
            end = buf.find(b"\n", start)
            line = buf[start : n if end < 0 else end]
            if parse_from_line(line) is not None:
                return start
            pos = start + 5

    def _cut(self, end: int) -> int:
        """Where the message before a separator at `end` stops: without the one line end."""
        buf = self.buf
        if end >= len(buf):
            # (buf may be an mmap, which has no endswith)
            if buf[end - len(self.nl) : end] == self.nl:
                return end - len(self.nl)
            if buf[end - 1 : end] == b"\n":
                return end - 1
            return end
        if self.nl == b"\r\n" and buf[end - 2 : end] == b"\r\n":
            return end - 2
        return end - 1

    def __iter__(self) -> Iterator[MboxMessage]:
        buf = self.buf
        n = len(buf)
        nl = self.nl
        pos = 0
        first_line = buf[: max(buf.find(b"\n"), 0)].rstrip(b"\r")
        if parse_from_line(first_line) is None:
            pos = self._next_separator(1)
            if buf[:pos].strip():
                self.problems.append(f"offset 0: {pos} bytes before the first From line skipped")
        first_message = True
        while pos < n:
            line_end = buf.find(b"\n", pos)
            if line_end < 0:
                self.problems.append(f"offset {pos}: a From line with nothing after it skipped")
                return
            fline = buf[pos:line_end].rstrip(b"\r")
            start = line_end + 1
            stop = self._next_separator(start)
            hdr_end = buf.find(nl + nl, start - len(nl), min(stop, start + MAX_HEADER))
            end = -1
            if hdr_end >= 0:
                stop, end = self._content_length(start, hdr_end, stop)
            if end < 0:
                end = self._cut(stop)
            msg = self._message(fline, parse_from_line(fline), buf[start:end], pos, first_message)
            pos = stop
            first_message = False
            if msg is not None:
                msg.end = stop
                yield msg

    def _content_length(self, start: int, hdr_end: int, stop: int) -> tuple[int, int]:
        """(next message's offset, this message's end) as Content-Length says, if it lands exactly
        on a separator or the end of the file; else (`stop`, -1)."""
        buf, nl, n = self.buf, self.nl, len(self.buf)
        clen = None
        for name, fld in header_fields(buf[start : hdr_end + len(nl)]):
            if name == b"content-length":
                v = _value(fld)
                clen = int(v) if v.isdigit() and len(v) < 16 else None
        if clen is None:
            return stop, -1
        cand = hdr_end + 2 * len(nl) + clen
        if cand == n:
            return n, n  # the body runs to the end of the file: no separator line to drop
        if cand + len(nl) == n and buf[cand:n] == nl:
            return n, cand
        if buf[cand : cand + len(nl)] == nl and buf[cand + len(nl) : cand + len(nl) + 5] == b"From ":
            le = buf.find(b"\n", cand + len(nl))
            if parse_from_line(buf[cand + len(nl) : n if le < 0 else le].rstrip(b"\r")) is not None:
                return cand + len(nl), cand
        return stop, -1

    def _message(
        self, fline: bytes, date: float | None, raw: bytes, offset: int, first: bool
    ) -> MboxMessage | None:
        nl = self.nl
        header, sep, body = split_message(raw, nl)
        kept: list[bytes] = []
        flags: set[str] = set()
        uid: int | None = None
        pseudo = False
        for name, fld in header_fields(header):
            if name not in META_HEADERS:
                kept.append(fld)
                continue
            value = _value(fld)
            if name == b"status":
                flags.update(f for c, f in _STATUS_FLAGS.items() if c in value)
            elif name == b"x-status":
                flags.update(f for c, f in _XSTATUS_FLAGS.items() if c in value)
            elif name == b"x-keywords":
                flags.update(_keywords(value.decode("utf-8", "replace")))
            elif name == b"x-uid":
                uid = int(value) if value.isdigit() and 0 < int(value) < 2**32 else None
            elif name in (b"x-imapbase", b"x-imap") and first:
                parts = value.decode("ascii", "replace").split()
                if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
                    validity, last = int(parts[0]), int(parts[1])
                    if 0 < validity < 2**32 and last < 2**32:
                        self.base = MboxBase(validity, last, _keywords(" ".join(parts[2:])))
                pseudo = name == b"x-imap"
        if pseudo:
            return None
        if self.quoting != "none":
            rx = _MBOXRD_UNQUOTE if self.quoting == "mboxrd" else _MBOXO_UNQUOTE
            body = rx.sub(rb"\1", body)
        return MboxMessage(b"".join(kept) + sep + body, fline, date, uid, frozenset(flags), offset)


def split_message(data: bytes, nl: bytes) -> tuple[bytes, bytes, bytes]:
    """(header with its last line end, the blank line or b"", body). Reader and writer share it,
    so both agree where the metadata block goes."""
    if data.startswith(nl):
        return b"", nl, data[len(nl) :]
    i = data.find(nl + nl)
    if i < 0:
        return data, b"", b""
    return data[: i + len(nl)], nl, data[i + 2 * len(nl) :]


def read_mbox(buf: bytes, *, quoting: str = "none") -> MboxReader:
    return MboxReader(buf, quoting=quoting)


# --- writing --------------------------------------------------------------------------------


def status_headers(flags: Iterable[str], uid: int | None, nl: bytes, base: MboxBase | None = None) -> bytes:
    """The metadata block mailcove writes at the end of a header, in Dovecot's order:
    X-IMAPbase (first message only), X-UID, Status, X-Status, X-Keywords."""
    fl = set(flags)
    out: list[bytes] = []
    if base is not None and base.uidvalidity is not None:
        kw = "".join(f" {k}" for k in base.keywords)
        out.append(f"X-IMAPbase: {base.uidvalidity} {base.uidlast or 0:010d}{kw}".encode())
    if uid is not None:
        out.append(b"X-UID: %d" % uid)
    out.append(b"Status: RO" if "\\Seen" in fl else b"Status: O")
    xs = "".join(c for c, f in (("A", "\\Answered"), ("F", "\\Flagged"), ("T", "\\Draft"), ("D", "\\Deleted"))
                 if f in fl)
    if xs:
        out.append(b"X-Status: " + xs.encode())
    keywords = sorted(f for f in fl if not f.startswith("\\"))
    if keywords:
        out.append(b"X-Keywords: " + " ".join(keywords).encode())
    return b"".join(line + nl for line in out)


def needs_content_length(data: bytes) -> bool:
    """True when a line of `data` would be read as a separator (only un-quoted files need it)."""
    pos = 0
    while True:
        i = data.find(b"\nFrom ", pos)
        if i < 0:
            return data.startswith(b"From ") and parse_from_line(data[: data.find(b"\n")]) is not None
        end = data.find(b"\n", i + 1)
        if parse_from_line(data[i + 1 : len(data) if end < 0 else end].rstrip(b"\r")) is not None:
            return True
        pos = i + 1


def write_message(
    data: bytes,
    fline: bytes,
    flags: Iterable[str],
    uid: int | None,
    nl: bytes,
    *,
    base: MboxBase | None = None,
    quoting: str = "none",
) -> bytes:
    """One message for an mbox file, `data` already in the file's line endings: the From line,
    the header with the metadata block appended, the body (quoted as asked), and the separator
    line end. Reading it back gives `data` and the same flags and UID."""
    header, sep, body = split_message(data, nl)
    if quoting == "mboxrd":
        body = _MBOXRD_QUOTE.sub(rb">\1", body)
    elif quoting == "mboxo":
        body = _MBOXO_QUOTE.sub(rb">\1", body)
    meta = status_headers(flags, uid, nl, base)
    if not sep:
        # No blank line: the whole message reads back as header, so the block goes first.
        return fline + nl + meta + header + nl
    if quoting == "none" and needs_content_length(nl + body):
        meta += b"Content-Length: %d" % len(body) + nl
    return fline + nl + header + meta + nl + body + nl
