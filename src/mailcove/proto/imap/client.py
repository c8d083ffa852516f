"""A strict client-role response parser: server bytes in, parsed responses out.

For tests and tools: every response a test receives can be checked against the RFC 9051 / RFC 3501
grammar instead of matched as a substring. Strict means: CRLF line ends only, exactly one SP between
tokens, no trailing SP, legal atom and quoted characters, literal sizes exact, and known responses
(FETCH items, ENVELOPE, BODYSTRUCTURE, LIST, STATUS, ESEARCH, response codes, ...) shaped as the
grammar says. Anything else raises `ResponseSyntaxError` naming the position.

Values: atoms are ``str``, numbers ``int``, strings ``bytes`` (quoted or literal), NIL ``None``,
parenthesised lists ``list``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Continuation", "ResponseParser", "ResponseSyntaxError", "Tagged", "Untagged", "parse_responses"]

_ATOM = re.compile(rb"[^(){ \x00-\x1f\x7f%*\"\\\]\x80-\xff]+")
_FLAG = re.compile(rb"\\?[^(){ \x00-\x1f\x7f%*\"\\\]\x80-\xff]+|\\\*")
_TAG = re.compile(rb"[^(){ \x00-\x1f\x7f%*\"\\+\x80-\xff]+")
_QUOTED = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"')
_LITERAL = re.compile(rb"(~?)\{(\d{1,20})\}\r\n")
_NUMBER = re.compile(rb"\d+")
_TEXT = re.compile(rb"[^\r\n\x00]+")
_CODE_TEXT = re.compile(rb"[^\]\r\n\x00]*")
_SEQSET = re.compile(rb"(?:\d+|\*)(?::(?:\d+|\*))?(?:,(?:\d+|\*)(?::(?:\d+|\*))?)*")
_SECTION = re.compile(rb"(?:[1-9]\d*(?:\.[1-9]\d*)*)?(?:\.?(?:HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME))?",
                      re.IGNORECASE)
_DATETIME = re.compile(rb'"[ \d]\d-(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-\d{4} '
                       rb'\d\d:\d\d:\d\d [+-]\d{4}"')
_ANNOUNCE = re.compile(rb"~?\{(\d{1,20})\}\Z")
_STATUS_ITEMS = {"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "HIGHESTMODSEQ",
                 "APPENDLIMIT", "MAILBOXID"}


class ResponseSyntaxError(ValueError):
    """The server sent something the grammar does not allow."""


@dataclass(frozen=True)
class Tagged:
    tag: str
    status: str
    code: str | None
    code_data: Any
    text: str
    raw: bytes = field(repr=False, compare=False, default=b"")


@dataclass(frozen=True)
class Untagged:
    """``kind`` is the upper-case response name (OK, BYE, CAPABILITY, LIST, EXISTS, FETCH, ...);
    ``number`` the leading number of EXISTS / RECENT / EXPUNGE / FETCH; ``data`` the parsed
    payload (see the ``_r_*`` parsers: FETCH gives a dict item-name -> value); status responses
    carry ``code``/``code_data``/``text``."""

    kind: str
    number: int | None = None
    data: Any = None
    code: str | None = None
    code_data: Any = None
    text: str = ""
    raw: bytes = field(repr=False, compare=False, default=b"")


@dataclass(frozen=True)
class Continuation:
    text: bytes
    raw: bytes = field(repr=False, compare=False, default=b"")


Response = Tagged | Untagged | Continuation


MAX_DEPTH = 100  # parenthesis nesting; deeper input is refused rather than recursed into


class _P:
    __slots__ = ("buf", "depth", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0
        self.depth = 0

    def fail(self, what: str) -> ResponseSyntaxError:
        return ResponseSyntaxError(f"expected {what} at {self.pos}: {self.buf[max(0, self.pos - 20):self.pos + 30]!r}")

    def peek(self) -> int:
        return self.buf[self.pos] if self.pos < len(self.buf) else -1

    def at_end(self) -> bool:
        return self.pos >= len(self.buf)

    def end(self) -> None:
        if self.pos != len(self.buf):
            raise self.fail("end of response")

    def lit(self, s: bytes, nocase: bool = True) -> None:
        got = self.buf[self.pos:self.pos + len(s)]
        if (got.upper() if nocase else got) != s:
            raise self.fail(s.decode())
        self.pos += len(s)

    def accept(self, s: bytes) -> bool:
        if self.buf[self.pos:self.pos + len(s)].upper() == s:
            self.pos += len(s)
            return True
        return False

    def sp(self) -> None:
        self.lit(b" ")

    def _re(self, rx: re.Pattern[bytes], what: str) -> bytes:
        m = rx.match(self.buf, self.pos)
        if not m or (m.end() == self.pos and what != "text"):
            raise self.fail(what)
        self.pos = m.end()
        return m.group()

    def atom(self) -> str:
        return self._re(_ATOM, "atom").decode("ascii")

    def number(self) -> int:
        return int(self._re(_NUMBER, "number"))

    def nz_number(self) -> int:
        n = self.number()
        if n == 0:
            raise self.fail("non-zero number")
        return n

    def quoted(self) -> bytes:
        m = _QUOTED.match(self.buf, self.pos)
        if not m:
            raise self.fail("quoted string")
        self.pos = m.end()
        return re.sub(rb"\\([\"\\])", rb"\1", m.group(1))

    def literal(self, allow8: bool = False) -> bytes:
        m = _LITERAL.match(self.buf, self.pos)
        if not m or (m.group(1) and not allow8):
            raise self.fail("literal")
        n = int(m.group(2))
        if m.end() + n > len(self.buf):
            raise self.fail("literal data")
        data = self.buf[m.end():m.end() + n]
        if not m.group(1) and b"\x00" in data:
            raise self.fail("literal without NUL")
        self.pos = m.end() + n
        return data

    def string(self) -> bytes:
        c = self.peek()
        if c == 0x22:
            return self.quoted()
        if c == 0x7B:
            return self.literal()
        raise self.fail("string")

    def nstring(self, allow8: bool = False) -> bytes | None:
        if self.accept(b"NIL"):
            return None
        if allow8 and self.peek() == 0x7E:
            return self.literal(True)
        return self.string()

    def astring(self) -> bytes:
        c = self.peek()
        if c in (0x22, 0x7B):
            return self.string()
        m = re.compile(rb"[^(){ \x00-\x1f\x7f%*\"\\\x80-\xff]+").match(self.buf, self.pos)
        if not m:
            raise self.fail("astring")
        self.pos = m.end()
        return m.group()

    def mailbox(self) -> bytes:
        return self.astring()

    def list_of(self, item: Any, allow_empty: bool = True) -> list[Any]:
        self.lit(b"(")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail("shallower nesting")
        out: list[Any] = []
        if self.peek() == 0x29:
            if not allow_empty:
                raise self.fail("non-empty list")
            self.pos += 1
            self.depth -= 1
            return out
        out.append(item())
        while self.peek() == 0x20:
            self.pos += 1
            out.append(item())
        self.lit(b")")
        self.depth -= 1
        return out

    def flag(self) -> str:
        return self._re(_FLAG, "flag").decode("utf-8")

    def text(self) -> str:
        return self._re(_TEXT, "text").decode("utf-8", "replace")

    def value(self) -> Any:
        """A generic value: NIL, number, string, atom or list (for extension data)."""
        c = self.peek()
        if c == 0x28:
            return self.list_of(self.value)
        if c in (0x22, 0x7B):
            return self.string()
        if self.buf[self.pos:self.pos + 3].upper() == b"NIL" and not _ATOM.match(self.buf, self.pos + 3):
            self.pos += 3
            return None
        m = _NUMBER.match(self.buf, self.pos)
        if m and not _ATOM.match(self.buf, m.end()):
            self.pos = m.end()
            return int(m.group())
        return self.atom()


# --- response codes -------------------------------------------------------------------------------
def _resp_text(p: _P) -> tuple[str | None, Any, str]:
    code = None
    data: Any = None
    if p.peek() == 0x5B:
        p.pos += 1
        code = p.atom().upper()
        if code in ("UIDNEXT", "UIDVALIDITY", "UNSEEN"):
            p.sp()
            data = p.nz_number()
        elif code in ("HIGHESTMODSEQ", "APPENDLIMIT"):
            p.sp()
            data = p.number()
        elif code in ("PERMANENTFLAGS",):
            p.sp()
            data = p.list_of(p.flag)
        elif code == "CAPABILITY":
            p.sp()
            data = [p.atom()]
            while p.peek() == 0x20:
                p.pos += 1
                data.append(p.atom())
            _check_caps(p, data)
        elif code == "APPENDUID":
            p.sp()
            v = p.nz_number()
            p.sp()
            data = (v, p._re(_SEQSET, "uid set").decode())
        elif code == "COPYUID":
            p.sp()
            v = p.nz_number()
            p.sp()
            a = p._re(_SEQSET, "uid set").decode()
            p.sp()
            data = (v, a, p._re(_SEQSET, "uid set").decode())
        elif code == "BADCHARSET":
            if p.peek() == 0x20:
                p.pos += 1
                data = p.list_of(p.astring, allow_empty=False)
        elif code == "MODIFIED":
            p.sp()
            data = p._re(_SEQSET, "sequence set").decode()
        elif p.peek() == 0x20:
            p.pos += 1
            data = p._re(_CODE_TEXT, "text").decode("utf-8", "replace")
        p.lit(b"]")
        if p.at_end():
            return code, data, ""  # rev1 allowed "resp-text-code" with no text
        p.sp()
    return code, data, p.text() if not p.at_end() else _missing_text(p)


def _missing_text(p: _P) -> str:
    raise p.fail("text")


def _check_caps(p: _P, caps: list[str]) -> None:
    if not any(c.upper() in ("IMAP4REV1", "IMAP4REV2") for c in caps):
        raise p.fail("IMAP4rev1 or IMAP4rev2 in CAPABILITY")


# --- FETCH ---------------------------------------------------------------------------------------
def _address(p: _P) -> list[Any]:
    p.lit(b"(")
    out = [p.nstring()]
    for _ in range(3):
        p.sp()
        out.append(p.nstring())
    p.lit(b")")
    return out


def _addresses(p: _P) -> list[Any] | None:
    if p.accept(b"NIL"):
        return None
    p.lit(b"(")
    out = [_address(p)]
    while p.peek() == 0x28:  # no SP between addresses (RFC 9051 §9 env-from etc.)
        out.append(_address(p))
    p.lit(b")")
    return out


def _envelope(p: _P) -> list[Any]:
    p.lit(b"(")
    env: list[Any] = [p.nstring()]
    p.sp()
    env.append(p.nstring())
    for _ in range(6):
        p.sp()
        env.append(_addresses(p))
    p.sp()
    env.append(p.nstring())
    p.sp()
    env.append(p.nstring())
    p.lit(b")")
    return env


def _body_fld_param(p: _P) -> list[Any] | None:
    if p.accept(b"NIL"):
        return None

    def pair() -> tuple[bytes, bytes]:
        k = p.string()
        p.sp()
        return (k, p.string())
    return p.list_of(pair, allow_empty=False)


def _body_ext(p: _P, multipart: bool) -> dict[str, Any]:
    """Extension data after the basic fields: dsp, lang, loc, then anything."""
    ext: dict[str, Any] = {}
    if p.peek() != 0x20:
        return ext
    if not multipart:
        p.sp()
        ext["md5"] = p.nstring()
        if p.peek() != 0x20:
            return ext
    p.sp()
    if p.accept(b"NIL"):
        ext["disposition"] = None
    else:
        p.lit(b"(")
        d = p.string()
        p.sp()
        ext["disposition"] = (d, _body_fld_param(p))
        p.lit(b")")
    if p.peek() != 0x20:
        return ext
    p.sp()
    if p.peek() == 0x28:
        ext["language"] = p.list_of(p.string, allow_empty=False)
    else:
        ext["language"] = p.nstring()
    if p.peek() != 0x20:
        return ext
    p.sp()
    ext["location"] = p.nstring()
    extra = []
    while p.peek() == 0x20:
        p.pos += 1
        extra.append(p.value())
    if extra:
        ext["extension"] = extra
    return ext


def _body(p: _P, extensible: bool, depth: int = 0) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise p.fail("shallower body structure")
    p.lit(b"(")
    if p.peek() == 0x28:
        parts = [_body(p, extensible, depth + 1)]
        while p.peek() == 0x28:
            parts.append(_body(p, extensible, depth + 1))
        p.sp()
        sub = p.string()
        b: dict[str, Any] = {"type": b"MULTIPART", "subtype": sub, "parts": parts}
        if p.peek() == 0x20:
            if not extensible:
                raise p.fail("no extension data in BODY")
            p.sp()
            b["params"] = _body_fld_param(p)
            b.update(_body_ext(p, True))
        p.lit(b")")
        return b
    typ = p.string()
    p.sp()
    sub = p.string()
    p.sp()
    b = {"type": typ, "subtype": sub, "params": _body_fld_param(p)}
    p.sp()
    b["id"] = p.nstring()
    p.sp()
    b["description"] = p.nstring()
    p.sp()
    b["encoding"] = p.string()
    p.sp()
    b["size"] = p.number()
    t, s = typ.upper(), sub.upper()
    if t == b"MESSAGE" and s in (b"RFC822", b"GLOBAL"):
        p.sp()
        b["envelope"] = _envelope(p)
        p.sp()
        b["body"] = _body(p, extensible, depth + 1)
        p.sp()
        b["lines"] = p.number()
    elif t == b"TEXT":
        p.sp()
        b["lines"] = p.number()
    if p.peek() == 0x20:
        if not extensible:
            raise p.fail("no extension data in BODY")
        b.update(_body_ext(p, False))
    p.lit(b")")
    return b


def _fetch(p: _P) -> dict[str, Any]:
    p.lit(b"(")
    out: dict[str, Any] = {}
    while True:
        name = p._re(re.compile(rb"[A-Za-z0-9.]+"), "fetch item").decode().upper()
        if name in ("BODY", "BINARY", "BINARY.SIZE") and p.peek() == 0x5B:
            p.pos += 1
            sec_start = p.pos
            p._re(_SECTION, "text")
            if p.peek() == 0x20:
                if not p.buf[sec_start:p.pos].upper().endswith(b"FIELDS") and \
                        not p.buf[sec_start:p.pos].upper().endswith(b"FIELDS.NOT"):
                    raise p.fail("]")
                p.sp()
                p.list_of(p.astring, allow_empty=False)
            p.lit(b"]")
            section = p.buf[sec_start - 1:p.pos].decode("utf-8", "replace")
            if name == "BINARY" and any(w in section.upper() for w in ("HEADER", "TEXT", "MIME")):
                raise p.fail("BINARY section-binary")
            if p.peek() == 0x3C:
                p.pos += 1
                origin = p.number()
                p.lit(b">")
                section += f"<{origin}>"
            p.sp()
            key = name + section
            if name == "BINARY.SIZE":
                out[key] = p.number()
            else:
                out[key] = p.nstring(allow8=name == "BINARY")
        else:
            p.sp()
            if name == "FLAGS":
                out[name] = p.list_of(p.flag)
            elif name == "UID":
                out[name] = p.nz_number()
            elif name in ("RFC822.SIZE",):
                out[name] = p.number()
            elif name == "INTERNALDATE":
                out[name] = p._re(_DATETIME, "date-time").decode()
            elif name == "ENVELOPE":
                out[name] = _envelope(p)
            elif name in ("BODY", "BODYSTRUCTURE"):
                out[name] = _body(p, name == "BODYSTRUCTURE")
            elif name in ("RFC822", "RFC822.HEADER", "RFC822.TEXT"):
                out[name] = p.nstring()
            elif name == "MODSEQ":
                p.lit(b"(")
                out[name] = p.number()
                p.lit(b")")
            else:
                out[name] = p.value()
        if p.peek() == 0x29:
            p.pos += 1
            return out
        p.sp()


# --- untagged data -------------------------------------------------------------------------------
def _list(p: _P) -> dict[str, Any]:
    attrs = p.list_of(p.flag)
    p.sp()
    if p.accept(b"NIL"):
        sep = None
    else:
        sep = p.quoted()
        if len(sep) != 1:
            raise p.fail("one-character separator")
    p.sp()
    name = p.mailbox()
    ext = None
    if p.peek() == 0x20:
        p.pos += 1
        ext = p.list_of(p.value, allow_empty=False)
    return {"attributes": attrs, "separator": sep, "name": name, "extended": ext}


def _status(p: _P) -> dict[str, Any]:
    name = p.mailbox()
    p.sp()
    items: dict[str, int | None] = {}

    def item() -> None:
        k = p.atom().upper()
        if k not in _STATUS_ITEMS:
            raise p.fail("status item")
        p.sp()
        items[k] = None if k == "APPENDLIMIT" and p.accept(b"NIL") else p.number()
    p.list_of(item)
    return {"name": name, "items": items}


def _numbers(p: _P) -> list[int]:
    out = []
    while p.peek() == 0x20:
        p.pos += 1
        if p.peek() == 0x28:
            break
        out.append(p.nz_number())
    return out


def _search(p: _P) -> dict[str, Any]:
    nums = _numbers(p)
    modseq = None
    if p.peek() == 0x28:
        p.lit(b"(MODSEQ ")
        modseq = p.nz_number()
        p.lit(b")")
        if not nums:
            raise p.fail("numbers before MODSEQ")
    elif p.buf[p.pos - 1:p.pos] == b" " and p.pos == len(p.buf):
        raise p.fail("no trailing SP")
    return {"numbers": nums, "modseq": modseq}


def _esearch(p: _P) -> dict[str, Any]:
    out: dict[str, Any] = {"tag": None, "uid": False}
    if p.buf[p.pos:p.pos + 6].upper() == b" (TAG ":
        p.pos += 6
        tag = p.string()
        if not _TAG.fullmatch(tag):
            raise p.fail("tag in TAG")
        out["tag"] = tag.decode("ascii")
        p.lit(b")")
    if p.buf[p.pos:p.pos + 4].upper() == b" UID" and p.buf[p.pos + 4:p.pos + 5] in (b" ", b""):
        p.pos += 4
        out["uid"] = True
    while p.peek() == 0x20:
        p.pos += 1
        k = p.atom().upper()
        p.sp()
        if k in ("MIN", "MAX"):
            out[k] = p.nz_number()
        elif k in ("COUNT", "MODSEQ"):
            out[k] = p.number()
        elif k in ("ALL", "PARTIAL"):
            out[k] = p._re(_SEQSET, "sequence set").decode()
        else:
            out[k] = p.value()
    return out


def _thread(p: _P) -> list[Any]:
    out = []
    while p.peek() == 0x28:
        out.append(_thread_list(p, 0))
    return out


def _thread_list(p: _P, depth: int) -> list[Any]:
    """RFC 5256: ``"(" (thread-members / thread-nested) ")"``, ``thread-members = nz-number
    *(SP nz-number) [SP thread-nested]``, ``thread-nested = 2*thread-list``."""
    if depth > MAX_DEPTH:
        raise p.fail("shallower thread")
    p.lit(b"(")
    members: list[Any] = []
    if p.peek() == 0x28:
        members.extend(_thread_nested(p, depth))
    else:
        members.append(p.nz_number())
        while p.peek() == 0x20:
            p.pos += 1
            if p.peek() == 0x28:
                members.extend(_thread_nested(p, depth))
                break
            members.append(p.nz_number())
    p.lit(b")")
    return members


def _thread_nested(p: _P, depth: int) -> list[Any]:
    out = [_thread_list(p, depth + 1)]
    while p.peek() == 0x28:
        out.append(_thread_list(p, depth + 1))
    if len(out) < 2:
        raise p.fail("two or more nested threads")
    return out


def _namespace(p: _P) -> list[Any]:
    out = []
    for i in range(3):
        if i:
            p.sp()
        if p.accept(b"NIL"):
            out.append(None)
            continue

        def desc() -> tuple[bytes, bytes | None]:
            p.lit(b"(")
            prefix = p.string()
            p.sp()
            sep = None if p.accept(b"NIL") else p.quoted()
            while p.peek() == 0x20:
                p.pos += 1
                p.value()
            p.lit(b")")
            return (prefix, sep)
        p.lit(b"(")
        ds = [desc()]
        while p.peek() == 0x28:
            ds.append(desc())
        p.lit(b")")
        out.append(ds)
    return out


def _check_rev2(r: Response) -> None:
    """What RFC 9051 (Appendix E) removed: \\Recent, the RECENT response and STATUS item, and the
    SEARCH response (ESEARCH replaces it). LSUB is left alone: a server that also speaks rev1 may
    still answer a client that sends it."""
    if not isinstance(r, Untagged):
        return
    if r.kind in ("RECENT", "SEARCH"):
        raise ResponseSyntaxError(f"IMAP4rev2 has no {r.kind} response: {r.raw[:60]!r}")
    flags: list[str] = []
    if r.kind == "FLAGS":
        flags = r.data
    elif r.kind == "FETCH":
        flags = r.data.get("FLAGS", [])
    elif r.code == "PERMANENTFLAGS":
        flags = r.code_data
    elif r.kind == "STATUS" and "RECENT" in r.data["items"]:
        raise ResponseSyntaxError(f"IMAP4rev2 has no STATUS RECENT: {r.raw[:60]!r}")
    if any(f.lower() == "\\recent" for f in flags):
        raise ResponseSyntaxError(f"IMAP4rev2 has no \\Recent flag: {r.raw[:60]!r}")


def _parse_response(line: bytes) -> Response:
    p = _P(line)
    if line.startswith(b"+"):
        p.pos = 1
        if p.at_end():
            return Continuation(b"", line)  # RFC 3501 servers often send a bare "+"
        p.sp()
        return Continuation(line[p.pos:], line)
    if line.startswith(b"* "):
        p.pos = 2
        m = _NUMBER.match(line, 2)
        if m:
            p.pos = m.end()
            num = int(m.group())
            p.sp()
            kind = p.atom().upper()
            if kind == "FETCH":
                if num == 0:
                    raise p.fail("non-zero message number")
                p.sp()
                data = _fetch(p)
                p.end()
                return Untagged(kind, num, data, raw=line)
            if kind in ("EXISTS", "RECENT", "EXPUNGE"):
                if kind == "EXPUNGE" and num == 0:
                    raise p.fail("non-zero message number")
                p.end()
                return Untagged(kind, num, raw=line)
            raise p.fail("EXISTS, RECENT, EXPUNGE or FETCH")
        kind = p.atom().upper()
        if kind in ("OK", "NO", "BAD", "PREAUTH", "BYE"):
            p.sp()
            code, cdata, text = _resp_text(p)
            p.end()
            return Untagged(kind, code=code, code_data=cdata, text=text, raw=line)
        data: Any = None
        if kind == "CAPABILITY":
            caps = []
            while p.peek() == 0x20:
                p.pos += 1
                caps.append(p.atom())
            _check_caps(p, caps)
            data = caps
        elif kind == "ENABLED":
            data = []
            while p.peek() == 0x20:
                p.pos += 1
                data.append(p.atom())
        elif kind in ("LIST", "LSUB"):
            p.sp()
            data = _list(p)
        elif kind == "STATUS":
            p.sp()
            data = _status(p)
        elif kind == "FLAGS":
            p.sp()
            data = p.list_of(p.flag)
        elif kind == "SEARCH":
            data = _search(p)
        elif kind == "SORT":
            data = _numbers(p)
        elif kind == "ESEARCH":
            data = _esearch(p)
        elif kind == "THREAD":
            if p.peek() == 0x20:
                p.pos += 1
                data = _thread(p)
            else:
                data = []
        elif kind == "NAMESPACE":
            p.sp()
            data = _namespace(p)
        elif kind == "ID":
            p.sp()
            if p.accept(b"NIL"):
                data = None
            else:
                def pair() -> tuple[bytes, bytes | None]:
                    k = p.string()
                    p.sp()
                    return (k, p.nstring())
                data = dict(p.list_of(pair, allow_empty=False))
        elif kind == "QUOTA":
            p.sp()
            root = p.astring()
            p.sp()

            def res() -> tuple[str, int, int]:
                name = p.atom()
                p.sp()
                used = p.number()
                p.sp()
                return (name, used, p.number())
            data = {"root": root, "resources": p.list_of(res)}
        elif kind == "QUOTAROOT":
            p.sp()
            box = p.mailbox()
            roots = []
            while p.peek() == 0x20:
                p.pos += 1
                roots.append(p.astring())
            data = {"mailbox": box, "roots": roots}
        elif kind == "VANISHED":
            p.sp()
            earlier = p.accept(b"(EARLIER) ")
            data = {"earlier": earlier, "uids": p._re(_SEQSET, "uid set").decode()}
        else:
            raise p.fail("known untagged response")
        p.end()
        return Untagged(kind, data=data, raw=line)
    p.pos = 0
    tag = p._re(_TAG, "tag").decode("ascii")
    p.sp()
    status = p.atom().upper()
    if status not in ("OK", "NO", "BAD"):
        raise p.fail("OK, NO or BAD")
    p.sp()
    code, cdata, text = _resp_text(p)
    p.end()
    return Tagged(tag, status, code, cdata, text, line)


class ResponseParser:
    """Feed server bytes with `receive_data`; `next_response` returns a parsed response or None
    when more bytes are needed. Framing follows literals (``{n}`` and ``~{n}``), so a response
    with literals is returned whole."""

    def __init__(self, max_response: int = 256 * 1024 * 1024, rev2: bool = False) -> None:
        self.rev2 = rev2  # also refuse what IMAP4rev2 removed (set it after ENABLE IMAP4rev2)
        self._buf = bytearray()
        self._pos = 0
        self.max_response = max_response

    def receive_data(self, data: bytes) -> None:
        self._buf += data

    def next_response(self) -> Response | None:
        if len(self._buf) - self._pos > self.max_response:
            raise ResponseSyntaxError(f"response larger than {self.max_response} bytes")
        buf = self._buf
        i = self._pos
        while True:
            lf = buf.find(b"\n", i)
            if lf < 0:
                return None
            if lf == 0 or buf[lf - 1] != 0x0D:
                raise ResponseSyntaxError(f"bare LF at {lf}: {bytes(buf[max(0, lf - 30):lf + 1])!r}")
            m = _ANNOUNCE.search(bytes(buf[max(i, lf - 25):lf - 1]))
            if m is None:
                break
            n = int(m.group(1))
            if lf + 1 + n > len(buf):
                return None
            i = lf + 1 + n
        raw = bytes(buf[self._pos:lf - 1])
        self._pos = lf + 1
        if self._pos > 65536:
            del buf[:self._pos]
            self._pos = 0
        if b"\r" in raw.replace(b"\r\n", b"") and not _has_literal(raw):
            raise ResponseSyntaxError(f"bare CR in {raw[:60]!r}")
        resp = _parse_response(raw)
        if self.rev2:
            _check_rev2(resp)
        return resp

    def responses(self) -> list[Response]:
        out = []
        while (r := self.next_response()) is not None:
            out.append(r)
        return out

    @property
    def pending(self) -> int:
        return len(self._buf) - self._pos


def _has_literal(raw: bytes) -> bool:
    return b"}\r\n" in raw


def parse_responses(data: bytes, rev2: bool = False) -> list[Response]:
    """Parse a complete byte string of responses; raises if anything is left over or malformed."""
    rp = ResponseParser(rev2=rev2)
    rp.receive_data(data)
    out = rp.responses()
    if rp.pending:
        raise ResponseSyntaxError(f"incomplete response at the end: {bytes(rp._buf[rp._pos:])[:60]!r}")
    return out
