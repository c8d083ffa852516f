"""The command-argument reader: a cursor over one complete command (its lines and any literals,
CRLF of the last line removed) with one method per ABNF production of RFC 9051 §9.

Hand-written recursive descent: a generic tokenizer would have to guess whether ``]`` or ``%`` belongs
to an atom, which depends on the production (astring vs list-mailbox vs flag), and profiling shows
a method call per token keeps a typical ``UID FETCH 1:* (FLAGS)`` under ten microseconds.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

from mailcove.proto.imap import utf7
from mailcove.proto.imap.seqset import SeqSet, SeqSetError

__all__ = ["ParseError", "Parser"]

# ATOM-CHAR: any CHAR except atom-specials: ( ) { SP CTL % * " \ ]
_ATOM = re.compile(rb"[^(){ \x00-\x1f\x7f%*\"\\\]\x80-\xff]+")
# ASTRING-CHAR adds resp-specials "]"
_ASTRING = re.compile(rb"[^(){ \x00-\x1f\x7f%*\"\\\x80-\xff]+")
# list-char adds list-wildcards "%" "*" (and "]")
_LISTCHAR = re.compile(rb"[^(){ \x00-\x1f\x7f\"\\\x80-\xff]+")
_TAG = re.compile(rb"[^(){ \x00-\x1f\x7f%*\"\\+\x80-\xff]+")
_QUOTED = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"')
_QUOTED_UTF8 = _QUOTED
_LITERAL = re.compile(rb"(~?)\{(\d{1,20})(\+?)\}\r\n")
_NUMBER = re.compile(rb"\d+")
_SEQSET = re.compile(rb"[0-9*:,$]+")
_UNESCAPE = re.compile(rb"\\([\"\\])")
_MONTHS = {m: i + 1 for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"))}
_DATE = re.compile(rb"(\d{1,2})-([A-Za-z]{3})-(\d{4})")
_DATETIME = re.compile(rb'"([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"')
_SYSTEM_FLAGS = {"\\ANSWERED": "\\Answered", "\\FLAGGED": "\\Flagged", "\\DELETED": "\\Deleted",
                 "\\SEEN": "\\Seen", "\\DRAFT": "\\Draft", "\\RECENT": "\\Recent"}
MAX_NUMBER64 = 2**63 - 1
_SEQSET_CACHE: dict[bytes, SeqSet] = {}  # SeqSet is immutable; sets repeat (1:*, n:*, single UIDs)


class ParseError(Exception):
    """Malformed arguments. `status`/`code` let a few errors be NO (e.g. BADCHARSET)."""

    def __init__(self, text: str, *, code: str | None = None, status: str = "BAD") -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.status = status


class Parser:
    """Cursor over one command. `utf8` selects UTF-8 mailbox names (IMAP4rev2 / UTF8=ACCEPT)
    instead of modified UTF-7; `max_depth` bounds parenthesis nesting."""

    __slots__ = ("buf", "depth", "max_depth", "pos", "utf8")

    def __init__(self, buf: bytes, pos: int = 0, *, utf8: bool = False, max_depth: int = 16) -> None:
        self.buf = buf
        self.pos = pos
        self.utf8 = utf8
        self.max_depth = max_depth
        self.depth = 0

    # --- low level ------------------------------------------------------------------------------
    def error(self, what: str) -> ParseError:
        near = self.buf[self.pos:self.pos + 20].decode("ascii", "replace")
        near = "".join(c if c.isprintable() else "?" for c in near)
        return ParseError(f"Expected {what} at position {self.pos}" + (f" near {near!r}" if near else ""))

    def at_end(self) -> bool:
        return self.pos >= len(self.buf)

    def end(self) -> None:
        if self.pos < len(self.buf):
            raise self.error("end of command")

    def peek(self) -> int:
        return self.buf[self.pos] if self.pos < len(self.buf) else -1

    def peek_is(self, ch: bytes) -> bool:
        return self.buf.startswith(ch, self.pos)

    def sp(self) -> None:
        if self.pos < len(self.buf) and self.buf[self.pos] == 0x20:
            self.pos += 1
        else:
            raise self.error("SP")

    def maybe_sp(self) -> bool:
        if self.pos < len(self.buf) and self.buf[self.pos] == 0x20:
            self.pos += 1
            return True
        return False

    def expect(self, lit: bytes) -> None:
        if self.buf[self.pos:self.pos + len(lit)].upper() == lit:
            self.pos += len(lit)
        else:
            raise self.error(lit.decode())

    def accept(self, lit: bytes) -> bool:
        """Consume `lit` (upper-case, compared case-insensitively) if it is next."""
        if self.buf[self.pos:self.pos + len(lit)].upper() == lit:
            self.pos += len(lit)
            return True
        return False

    def open(self) -> None:
        self.expect(b"(")
        self.depth += 1
        if self.depth > self.max_depth:
            raise ParseError("Too deeply nested parentheses", code="LIMIT")

    def close(self) -> None:
        self.expect(b")")
        self.depth -= 1

    # --- tokens -------------------------------------------------------------------------------
    def tag(self) -> str:
        m = _TAG.match(self.buf, self.pos)
        if not m:
            raise self.error("tag")
        self.pos = m.end()
        return m.group().decode("ascii")

    def atom(self) -> str:
        m = _ATOM.match(self.buf, self.pos)
        if not m:
            raise self.error("atom")
        self.pos = m.end()
        return m.group().decode("ascii")

    def upper_atom(self) -> str:
        return self.atom().upper()

    def number(self) -> int:
        m = _NUMBER.match(self.buf, self.pos)
        if not m or len(m.group()) > 10:
            raise self.error("number")
        n = int(m.group())
        if n > 0xFFFFFFFF:
            raise self.error("32-bit number")
        self.pos = m.end()
        return n

    def nz_number(self) -> int:
        start = self.pos
        n = self.number()
        if n == 0:
            self.pos = start
            raise self.error("non-zero number")
        return n

    def number64(self) -> int:
        m = _NUMBER.match(self.buf, self.pos)
        if not m or len(m.group()) > 19:
            raise self.error("number")
        n = int(m.group())
        if n > MAX_NUMBER64:
            raise self.error("63-bit number")
        self.pos = m.end()
        return n

    def quoted(self) -> bytes:
        m = _QUOTED.match(self.buf, self.pos)
        if not m:
            raise self.error("quoted string")
        self.pos = m.end()
        s = m.group(1)
        return _UNESCAPE.sub(rb"\1", s) if b"\\" in s else s

    def literal(self) -> bytes:
        m = _LITERAL.match(self.buf, self.pos)
        if not m or m.group(1):
            raise self.error("literal")
        n = int(m.group(2))
        start = m.end()
        if start + n > len(self.buf):
            raise self.error("literal data")
        self.pos = start + n
        data = self.buf[start:start + n]
        if b"\x00" in data:
            raise ParseError("NUL in a literal")
        return data

    def string(self) -> bytes:
        c = self.peek()
        if c == 0x22:
            return self.quoted()
        if c == 0x7B:
            return self.literal()
        raise self.error("string")

    def astring(self) -> bytes:
        c = self.peek()
        if c == 0x22:
            return self.quoted()
        if c == 0x7B:
            return self.literal()
        m = _ASTRING.match(self.buf, self.pos)
        if not m:
            raise self.error("astring")
        self.pos = m.end()
        return m.group()

    def nstring(self) -> bytes | None:
        if self.accept(b"NIL"):
            return None
        return self.string()

    def text_astring(self) -> str:
        """An astring decoded as UTF-8 (8-bit input is allowed in strings from RFC 9051 on)."""
        try:
            return self.astring().decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("Invalid UTF-8 in a string") from None

    def seqset(self) -> SeqSet:
        m = _SEQSET.match(self.buf, self.pos)
        if not m:
            raise self.error("sequence set")
        text = m.group()
        s = _SEQSET_CACHE.get(text)
        if s is None:
            try:
                s = SeqSet.parse(text.decode("ascii"))
            except SeqSetError as exc:
                raise ParseError(f"Invalid sequence set: {exc}") from None
            if len(_SEQSET_CACHE) >= 4096:
                _SEQSET_CACHE.clear()
            _SEQSET_CACHE[text] = s
        self.pos = m.end()
        return s

    # --- mailbox names ------------------------------------------------------------------------
    # A name that is a valid astring but not a name we can hold (not modified UTF-7, not UTF-8, a
    # control character, "..") is a semantic error: NO [CANNOT], never BAD (RFC 9051 7.1: BAD is
    # for syntax only), and the client may go on using the connection.
    def _decode_name(self, raw: bytes, what: str) -> str:
        if self.utf8:
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ParseError(f"Invalid UTF-8 in {what}", code="CANNOT", status="NO") from None
        else:
            try:
                name = utf7.decode(raw)
            except utf7.Utf7Error as exc:
                raise ParseError(f"Invalid modified UTF-7 in {what}: {exc}", code="CANNOT", status="NO") from None
        if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name):
            raise ParseError(f"Control character in {what}", code="CANNOT", status="NO")
        if ".." in name:
            raise ParseError(f"'..' is not allowed in {what}", code="CANNOT", status="NO")
        return name

    def mailbox(self) -> str:
        """``mailbox``: INBOX is case-insensitive and returned as "INBOX"."""
        raw = self.astring()
        if len(raw) == 5 and raw.upper() == b"INBOX":
            return "INBOX"
        return self._decode_name(raw, "mailbox name")

    def list_mailbox(self) -> str | None:
        """``list-mailbox`` (a LIST pattern, wildcards allowed). None for a syntactically valid
        pattern that cannot name any mailbox (bad modified UTF-7, a control character, ".."):
        such a pattern matches nothing, and LIST still answers OK."""
        c = self.peek()
        if c in (0x22, 0x7B):
            raw = self.string()
        else:
            m = _LISTCHAR.match(self.buf, self.pos)
            if not m:
                raise self.error("mailbox pattern")
            self.pos = m.end()
            raw = m.group()
        if not raw:
            return ""
        try:
            return self._decode_name(raw, "mailbox pattern")
        except ParseError:
            return None

    # --- flags and dates ----------------------------------------------------------------------
    def flag(self, *, allow_recent: bool = False, allow_star: bool = False) -> str:
        if self.peek() == 0x5C:  # backslash
            self.pos += 1
            if allow_star and self.peek_is(b"*"):
                self.pos += 1
                return "\\*"
            name = "\\" + self.atom()
            canon = _SYSTEM_FLAGS.get(name.upper())
            if canon is None or (canon == "\\Recent" and not allow_recent):
                # flag-extension: accepted by the grammar, but no client may set unknown system flags
                raise ParseError(f"Invalid system flag {name}")
            return canon
        return self.atom()

    def flag_list(self) -> tuple[str, ...]:
        self.open()
        flags: list[str] = []
        if not self.accept(b")"):
            flags.append(self.flag())
            while self.maybe_sp():
                flags.append(self.flag())
            self.close()
        else:
            self.depth -= 1
        return tuple(flags)

    def flags_or_list(self) -> tuple[str, ...]:
        """STORE flags: a parenthesised list or bare flags separated by SP."""
        if self.peek() == 0x28:
            return self.flag_list()
        flags = [self.flag()]
        while self.maybe_sp():
            flags.append(self.flag())
        return tuple(flags)

    def date(self) -> date:
        """``date`` (search): 1-Feb-1994, optionally quoted."""
        quoted = self.peek() == 0x22
        if quoted:
            self.pos += 1
        m = _DATE.match(self.buf, self.pos)
        if not m:
            raise self.error("date")
        month = _MONTHS.get(m.group(2).decode().upper())
        try:
            if month is None:
                raise ValueError
            d = date(int(m.group(3)), month, int(m.group(1)))
        except ValueError:
            raise self.error("valid date") from None
        self.pos = m.end()
        if quoted:
            self.expect(b'"')
        return d

    def datetime(self) -> datetime:
        """``date-time``: "17-Jul-1996 02:44:25 -0700" (always quoted)."""
        m = _DATETIME.match(self.buf, self.pos)
        if not m:
            raise self.error("date-time")
        day, mon, year, hh, mm, ss, sign, zh, zm = (g.decode() for g in m.groups())
        month = _MONTHS.get(mon.upper())
        try:
            if month is None or int(zm) > 59:
                raise ValueError
            offset = timedelta(hours=int(zh), minutes=int(zm)) * (-1 if sign == "-" else 1)
            tz = UTC if not offset else timezone(offset)
            dt = datetime(int(year), month, int(day.strip()), int(hh), int(mm), int(ss), tzinfo=tz)
        except ValueError:
            raise self.error("valid date-time") from None
        self.pos = m.end()
        return dt
