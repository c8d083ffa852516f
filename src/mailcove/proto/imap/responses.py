"""Response builders. Everything returns ``bytes`` ready for the wire (CRLF included), except
`ResponseEncoder.fetch`, which returns segments so a large body can be streamed by the session.

Module-level functions are the rev1/rev2-independent pieces (string encodings, tagged and
untagged status responses); `ResponseEncoder` holds the per-session choices: IMAP4rev2 (no
\\Recent, no RECENT, ESEARCH for UID SEARCH ... ) and UTF-8 mailbox names (rev2 or UTF8=ACCEPT)
versus modified UTF-7.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from mailcove.proto.imap import utf7
from mailcove.proto.imap.seqset import compact, ordered_set

__all__ = [
    "LiteralRef", "ResponseEncoder", "ThreadNode", "astring", "atom_or_quoted", "continuation", "internaldate",
    "literal", "literal_header", "nstring", "quoted", "status_response", "string", "tagged", "untagged",
]

_ATOM_OK = re.compile(rb"[^(){ \x00-\x1f\x7f%*\"\\\]\x80-\xff]+\Z")
_ASTRING_OK = re.compile(rb"[^(){ \x00-\x1f\x7f%*\"\\\x80-\xff]+\Z")
_QUOTABLE_ASCII = re.compile(rb"[^\r\n\x00\x80-\xff]*\Z")
_QUOTABLE_8BIT = re.compile(rb"[^\r\n\x00]*\Z")
_ESCAPE = re.compile(rb'(["\\])')
MAX_QUOTED = 4096  # longer strings go as literals: easier on clients than kilobytes of quoted text
_STATUS = frozenset({"OK", "NO", "BAD", "PREAUTH", "BYE"})
_CODE = re.compile(r"[^\]\r\n\x00]*\Z")
_TEXT_CLEAN = re.compile(r"[\r\n\x00]")


def _b(value: str | bytes) -> bytes:
    return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value


def literal_header(size: int, binary: bool = False) -> bytes:
    """``{n}\\r\\n`` (``~{n}\\r\\n`` for literal8: BINARY data that may contain NUL)."""
    return b"~{%d}\r\n" % size if binary else b"{%d}\r\n" % size


def literal(data: bytes, binary: bool = False) -> bytes:
    return literal_header(len(data), binary) + data


def quoted(value: str | bytes) -> bytes:
    """A quoted string; the caller makes sure it has no CR, LF or NUL (use `string` otherwise)."""
    v = _b(value)
    return b'"' + (_ESCAPE.sub(rb"\\\1", v) if b'"' in v or b"\\" in v else v) + b'"'


def string(value: str | bytes, utf8: bool = False) -> bytes:
    """``string``: quoted when it can be, else a literal. 8-bit text is quoted only when `utf8`
    (IMAP4rev2 / UTF8=ACCEPT allow UTF-8 in quoted strings) and it is valid UTF-8."""
    v = _b(value)
    if len(v) <= MAX_QUOTED:
        if v.isascii():
            if _QUOTABLE_ASCII.match(v):
                return quoted(v)
        elif utf8 and _QUOTABLE_8BIT.match(v):
            try:
                v.decode("utf-8")
                return quoted(v)
            except UnicodeDecodeError:
                pass
    return literal(v)


def nstring(value: str | bytes | None, utf8: bool = False) -> bytes:
    return b"NIL" if value is None else string(value, utf8)


def astring(value: str | bytes, utf8: bool = False) -> bytes:
    """An atom when every byte is an ASTRING-CHAR (and it is not NIL), else `string`."""
    v = _b(value)
    if v and _ASTRING_OK.match(v) and v.upper() != b"NIL":
        return v
    return string(v, utf8)


def atom_or_quoted(value: str | bytes) -> bytes:
    v = _b(value)
    return v if v and _ATOM_OK.match(v) and v.upper() != b"NIL" else string(v)


def _code(code: str | None) -> bytes:
    if not code:
        return b""
    if not _CODE.match(code):
        raise ValueError(f"bad response code {code!r}")
    return b"[" + code.encode("utf-8") + b"] "


def _text(text: str) -> bytes:
    # resp-text must be non-empty (RFC 9051 §9 ``text = 1*TEXT-CHAR``), and never contain CRLF
    text = _TEXT_CLEAN.sub(" ", text) or "."
    if text.startswith("["):
        text = " " + text  # a text starting with [ would read as a response code
    return text.encode("utf-8", "replace")


def tagged(tag: str, status: str, text: str, code: str | None = None) -> bytes:
    """``<tag> OK|NO|BAD [code] text``."""
    if status not in ("OK", "NO", "BAD"):
        raise ValueError(status)
    return tag.encode("ascii") + b" " + status.encode() + b" " + _code(code) + _text(text) + b"\r\n"


def status_response(status: str, text: str, code: str | None = None) -> bytes:
    """``* OK|NO|BAD|PREAUTH|BYE [code] text``."""
    if status not in _STATUS:
        raise ValueError(status)
    return b"* " + status.encode() + b" " + _code(code) + _text(text) + b"\r\n"


def untagged(data: str | bytes) -> bytes:
    """``* <data>`` for data already in wire form (e.g. "3 EXISTS")."""
    return b"* " + _b(data) + b"\r\n"


def continuation(text: str | bytes = "Ready") -> bytes:
    """``+ text`` (bytes are sent as they are: AUTHENTICATE challenges in base64, or b"" for ``+ ``)."""
    return b"+ " + (_b(text) if isinstance(text, bytes) else _text(text)) + b"\r\n"


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def internaldate(dt: datetime | float) -> bytes:
    """``"17-Jul-1996 02:44:25 -0700"``; a float is a UTC timestamp."""
    if not isinstance(dt, datetime):
        from datetime import UTC

        dt = datetime.fromtimestamp(dt, UTC)
    off = dt.utcoffset()
    minutes = int(off.total_seconds() // 60) if off is not None else 0
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return (f'"{dt.day:02d}-{_MONTHS[dt.month - 1]}-{dt.year:04d} {dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} '
            f'{sign}{minutes // 60:02d}{minutes % 60:02d}"').encode("ascii")


@dataclass(frozen=True, slots=True)
class LiteralRef:
    """A FETCH value the session streams itself: the encoder writes the literal header for
    ``size`` bytes and leaves this object in place of the data. ``source`` is whatever the session
    needs to produce the bytes (a blob handle and range)."""

    size: int
    source: object = None
    binary: bool = False


FetchValue = bytes | LiteralRef


ThreadNode = tuple[int, list["ThreadNode"]]  # (message number or 0 for a dummy, children)


class ResponseEncoder:
    """Per-session response encoding. ``rev2``: IMAP4rev2 enabled (no \\Recent flag, no RECENT
    response). ``utf8``: UTF-8 mailbox names and quoted strings (rev2 or UTF8=ACCEPT); otherwise
    mailbox names are modified UTF-7."""

    __slots__ = ("rev2", "utf8")

    def __init__(self, rev2: bool = False, utf8: bool | None = None) -> None:
        self.rev2 = rev2
        self.utf8 = rev2 if utf8 is None else utf8

    # --- strings ------------------------------------------------------------------------------
    def mailbox(self, name: str) -> bytes:
        """A mailbox name as ``mailbox`` (astring) in the session's encoding."""
        if name.upper() == "INBOX":
            return b"INBOX"
        if self.utf8:
            return astring(name.encode("utf-8"), True)
        return astring(utf7.encode(name).encode("ascii"))

    def string(self, value: str | bytes) -> bytes:
        return string(value, self.utf8)

    # --- status -------------------------------------------------------------------------------
    def tagged(self, tag: str, status: str, text: str, code: str | None = None) -> bytes:
        return tagged(tag, status, text, code)

    def untagged_status(self, status: str, text: str, code: str | None = None) -> bytes:
        """``* OK|NO|BAD|PREAUTH|BYE [code] text``."""
        return status_response(status, text, code)

    def continuation(self, text: str | bytes = "Ready") -> bytes:
        return continuation(text)

    def capability(self, caps: Iterable[str]) -> bytes:
        return b"* CAPABILITY " + " ".join(caps).encode("ascii") + b"\r\n"

    def enabled(self, caps: Iterable[str]) -> bytes:
        caps = list(caps)
        return b"* ENABLED" + b"".join(b" " + c.encode("ascii") for c in caps) + b"\r\n"

    # --- mailbox data -------------------------------------------------------------------------
    def flag_list(self, flags: Iterable[str]) -> bytes:
        """``(\\Seen foo)``; \\Recent is left out under rev2."""
        if self.rev2:
            flags = [f for f in flags if f != "\\Recent"]
        return b"(" + " ".join(flags).encode("utf-8") + b")"

    def flags(self, flags: Iterable[str]) -> bytes:
        return b"* FLAGS " + self.flag_list(flags) + b"\r\n"

    def permanentflags(self, flags: Iterable[str], allow_new: bool = True) -> bytes:
        fl = [f for f in flags if f != "\\Recent"] + (["\\*"] if allow_new else [])
        return status_response("OK", "Flags permitted", "PERMANENTFLAGS (" + " ".join(fl) + ")")

    def exists(self, n: int) -> bytes:
        return b"* %d EXISTS\r\n" % n

    def recent(self, n: int) -> bytes:
        """``* n RECENT``; empty under rev2 (RFC 9051 removed it)."""
        return b"" if self.rev2 else b"* %d RECENT\r\n" % n

    def expunge(self, seq: int) -> bytes:
        return b"* %d EXPUNGE\r\n" % seq

    def vanished(self, uids: Iterable[int], earlier: bool = False) -> bytes:
        s = compact(uids)
        return (b"* VANISHED (EARLIER) " if earlier else b"* VANISHED ") + s.encode("ascii") + b"\r\n" if s else b""

    def list(self, attrs: Iterable[str], sep: str | None, name: str, extended: Mapping[str, bytes] | None = None,
             lsub: bool = False) -> bytes:
        """``* LIST (attrs) "/" name [(CHILDINFO ("SUBSCRIBED")) ...]``; ``extended`` maps a tag
        (CHILDINFO, OLDNAME) to its already-encoded value."""
        out = [b"* LSUB (" if lsub else b"* LIST (", " ".join(attrs).encode("ascii"), b") ",
               b"NIL" if sep is None else quoted(sep), b" ", self.mailbox(name)]
        if extended:
            out.append(b" (" + b" ".join(quoted(k) + b" " + v for k, v in extended.items()) + b")")
        out.append(b"\r\n")
        return b"".join(out)

    def status(self, name: str, items: Mapping[str, int | None]) -> bytes:
        """``* STATUS name (MESSAGES 3 ...)``; RECENT dropped under rev2, APPENDLIMIT None is NIL."""
        parts = []
        for k, v in items.items():
            if k == "RECENT" and self.rev2:
                continue
            parts.append(f"{k} {'NIL' if v is None else v}")
        return b"* STATUS " + self.mailbox(name) + b" (" + " ".join(parts).encode("ascii") + b")\r\n"

    def search(self, numbers: Iterable[int], modseq: int | None = None) -> bytes:
        """``* SEARCH 2 3 [(MODSEQ n)]``: the rev1 form."""
        body = b"".join(b" %d" % n for n in numbers)
        if modseq is not None and body:
            body += b" (MODSEQ %d)" % modseq
        return b"* SEARCH" + body + b"\r\n"

    def esearch(self, tag: str | None, uid: bool, *, min: int | None = None, max: int | None = None,
                count: int | None = None, all: Iterable[int] | None = None, modseq: int | None = None,
                keyword: str = "", all_in_order: Sequence[int] | None = None) -> bytes:
        """``* ESEARCH (TAG "a") UID MIN 1 MAX 9 COUNT 5 ALL 1:3,9 MODSEQ 7`` (RFC 4731 / rev2)."""
        out = [b"* ESEARCH"]
        if tag is not None:
            out.append(b" (TAG " + quoted(tag) + b")")
        if uid:
            out.append(b" UID")
        if min is not None:
            out.append(b" MIN %d" % min)
        if max is not None:
            out.append(b" MAX %d" % max)
        if count is not None:
            out.append(b" COUNT %d" % count)
        if all is not None:
            s = compact(all)
            if s:
                out.append(b" ALL " + s.encode("ascii"))
        if all_in_order:
            # ESORT (RFC 5267 3.2): ALL lists the matches in sort order, so only runs that ascend
            # by one become ranges ("1:5", but "5,4,3" for REVERSE).
            out.append(b" ALL " + ordered_set(all_in_order).encode("ascii"))
        if modseq is not None:
            out.append(b" MODSEQ %d" % modseq)
        out.append(b"\r\n")
        return b"".join(out)

    def sort(self, numbers: Iterable[int], modseq: int | None = None) -> bytes:
        """``* SORT 5 3 4 [(MODSEQ n)]`` (RFC 5256, RFC 7162 3.1.5 sort-data)."""
        body = b"".join(b" %d" % n for n in numbers)
        if modseq is not None and body:
            body += b" (MODSEQ %d)" % modseq
        return b"* SORT" + body + b"\r\n"

    def thread(self, threads: Sequence[ThreadNode]) -> bytes:
        """``* THREAD (1)(2 3 (4)(5))`` from (number, children) trees; number 0 is a dummy parent
        (RFC 5256 section 4: ``thread-list = "(" (thread-members / thread-nested) ")"``). A chain
        of only children is written flat, `(1 2 3)`, two or more children as nested lists after
        the chain, `(1 (2)(3 4))`. Iterative, so a thread of any depth costs no recursion."""
        out = bytearray(b"* THREAD")
        if threads:
            out += b" "
        close = None
        stack: list[ThreadNode | None] = list(reversed(threads))
        while stack:
            node = stack.pop()
            if node is close:
                out += b")"
                continue
            out += b"("
            ident, children = node
            wrote = False
            while True:
                if ident:
                    if wrote:
                        out += b" "
                    out += b"%d" % ident
                    wrote = True
                if len(children) != 1:
                    break
                ident, children = children[0]
            if not children:
                out += b")"
                continue
            if wrote:
                out += b" "
            stack.append(close)
            stack.extend(reversed(children))
        out += b"\r\n"
        return bytes(out)

    def namespace(self, personal: Sequence[tuple[str, str | None]] | None,
                  other: Sequence[tuple[str, str | None]] | None = None,
                  shared: Sequence[tuple[str, str | None]] | None = None) -> bytes:
        def ns(entries: Sequence[tuple[str, str | None]] | None) -> bytes:
            if not entries:
                return b"NIL"
            return b"(" + b"".join(b"(" + self.string(p) + b" " + (b"NIL" if s is None else quoted(s)) + b")"
                                   for p, s in entries) + b")"
        return b"* NAMESPACE " + ns(personal) + b" " + ns(other) + b" " + ns(shared) + b"\r\n"

    def id(self, params: Mapping[str, str | None] | None) -> bytes:
        if not params:
            return b"* ID NIL\r\n"
        return b"* ID (" + b" ".join(quoted(k) + b" " + nstring(v) for k, v in params.items()) + b")\r\n"

    def quota(self, root: str, resources: Iterable[tuple[str, int, int]]) -> bytes:
        """``* QUOTA root (STORAGE used limit ...)`` (STORAGE in KiB per RFC 9208)."""
        body = " ".join(f"{name} {used} {limit}" for name, used, limit in resources)
        return b"* QUOTA " + astring(root, self.utf8) + b" (" + body.encode("ascii") + b")\r\n"

    def quotaroot(self, mailbox: str, roots: Iterable[str]) -> bytes:
        return b"* QUOTAROOT " + self.mailbox(mailbox) + b"".join(b" " + astring(r, self.utf8) for r in roots) + \
            b"\r\n"

    # --- FETCH --------------------------------------------------------------------------------
    def fetch(self, seq: int, items: Iterable[tuple[str, FetchValue]]) -> list[bytes | LiteralRef]:
        """``* seq FETCH (name value ...)`` as segments: bytes, and `LiteralRef` objects in place
        of streamed bodies (the literal header is already in the preceding bytes). Values are
        already-encoded bytes (use `fetch_value` helpers) or `LiteralRef`."""
        out: list[bytes | LiteralRef] = []
        cur = bytearray(b"* %d FETCH (" % seq)
        first = True
        for name, value in items:
            if not first:
                cur += b" "
            first = False
            cur += name.encode("ascii")
            cur += b" "
            if isinstance(value, LiteralRef):
                cur += literal_header(value.size, value.binary)
                out.append(bytes(cur))
                out.append(value)
                cur = bytearray()
            else:
                cur += value
        cur += b")\r\n"
        out.append(bytes(cur))
        return out

    def fetch_uid_flags(self, first_seq: int, uids: Sequence[int], flags: Iterable[bytes]) -> bytes:
        """``* n FETCH (UID u FLAGS (...))`` for a run of consecutive sequence numbers, the
        commonest reply there is (a client's UID FETCH 1:* (FLAGS)); `flags` are encoded flag
        lists. One call per run, so 100,000 lines cost no call per line."""
        return b"".join([b"* %d FETCH (UID %d FLAGS %s)\r\n" % (seq, uid, fl)
                         for seq, uid, fl in zip(range(first_seq, first_seq + len(uids)), uids, flags, strict=True)])

    def fetch_bytes(self, seq: int, items: Iterable[tuple[str, bytes]]) -> bytes:
        """`fetch` when every value is in memory (the FLAGS / UID / MODSEQ fast path)."""
        return b"* %d FETCH (" % seq + b" ".join(n.encode("ascii") + b" " + v for n, v in items) + b")\r\n"
