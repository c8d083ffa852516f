"""A raw IMAP client and a strict response parser for the interop and differential tests.

Why hand-written: imapclient's lexer (imapclient.response_parser) is made to be forgiving. It
accepts double spaces, unbalanced quotes inside brackets, 8-bit bytes in quoted strings, and it
does not keep the difference between a quoted string, a literal, an atom and a number. Here every
response line is checked against the RFC 9051 / RFC 3501 grammar (formal syntax, section 9) and any
departure raises GrammarError, so a test that reads a response has also proved that it is well
formed. proto/imap/client.py can replace this module once it exists.

Values: Atom (str), int (number), Str (bytes, quoted or literal: same `string` in the grammar;
`.literal` tells which form was used), None (NIL), tuple (parenthesised list).
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field


class GrammarError(AssertionError):
    pass


class Atom(str):
    """An atom (also flags like \\Seen and fetch attribute names like BODY[1.MIME]<0>)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Atom({str(self)!r})"


class Str(bytes):
    """An IMAP string; equal to the same bytes whether it was sent quoted or as a literal."""

    literal: bool = False

    def __repr__(self) -> str:
        return f"Str({bytes(self)!r})"


Value = Atom | int | Str | None | tuple  # tuple of Value

# RFC 9051 ATOM-CHAR: any CHAR except atom-specials ( ) { SP CTL % * " \ ]. Flags add a leading
# backslash ("\Seen", "\*"), list-wildcards may appear in LIST mailbox names, and resp-specials ']'
# only closes a section. Fetch attributes carry a [section] and <partial>.
_ATOM_CHARS = set(range(0x21, 0x7F)) - set(b'(){ %*"\\]')
_ASTRING_EXTRA = set(b"]")  # ASTRING-CHAR = ATOM-CHAR / resp-specials
_QUOTED_FORBIDDEN = {0x0A, 0x0D, 0x00}


@dataclass
class Parser:
    data: bytes
    pos: int = 0
    utf8: bool = False  # after ENABLE UTF8=ACCEPT / IMAP4rev2, quoted strings may hold UTF-8

    def fail(self, why: str) -> GrammarError:
        start = max(0, self.pos - 40)
        before, after = self.data[start : self.pos], self.data[self.pos : self.pos + 40]
        return GrammarError(f"{why} at byte {self.pos}: {before!r} >>> {after!r}")

    def peek(self) -> int:
        return self.data[self.pos] if self.pos < len(self.data) else -1

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def expect(self, b: bytes) -> None:
        if not self.data.startswith(b, self.pos):
            raise self.fail(f"expected {b!r}")
        self.pos += len(b)

    def sp(self) -> None:
        self.expect(b" ")

    # --- tokens ------------------------------------------------------------------------------

    def value(self) -> Value:
        c = self.peek()
        if c == ord("("):
            return self.plist()
        if c == ord('"'):
            return self.quoted()
        if c == ord("{") or (c == ord("~") and self.data.startswith(b"~{", self.pos)):
            return self.literal()
        return self.atom_or_number()

    def plist(self) -> tuple:
        self.expect(b"(")
        items: list[Value] = []
        if self.peek() == ord(")"):
            self.pos += 1
            return ()
        while True:
            items.append(self.value())
            c = self.peek()
            if c == ord(")"):
                self.pos += 1
                return tuple(items)
            if c == ord(" "):
                self.pos += 1
                if self.peek() in (ord(" "), ord(")")):
                    raise self.fail("extra space in list")
                continue
            if c == ord("(") and self.data[self.pos - 1] == ord(")"):
                # 1*address, 1*body (multipart) and thread lists abut without SP
                continue
            raise self.fail("expected SP or ')' in list")

    def quoted(self) -> Str:
        self.expect(b'"')
        out = bytearray()
        while True:
            if self.at_end():
                raise self.fail("unterminated quoted string")
            c = self.data[self.pos]
            self.pos += 1
            if c == ord('"'):
                return Str(bytes(out))
            if c == ord("\\"):
                if self.peek() not in (ord('"'), ord("\\")):
                    raise self.fail("only \\\" and \\\\ may be escaped in a quoted string")
                out.append(self.data[self.pos])
                self.pos += 1
                continue
            if c in _QUOTED_FORBIDDEN:
                raise self.fail("CR, LF or NUL in a quoted string")
            if c >= 0x80 and not self.utf8:
                raise self.fail("8-bit byte in a quoted string (only allowed with UTF8=ACCEPT)")
            out.append(c)

    def literal(self) -> Str:
        binary = self.peek() == ord("~")
        if binary:
            self.pos += 1
        m = re.compile(rb"\{(\d+)\}\r\n").match(self.data, self.pos)
        if not m:
            raise self.fail("bad literal header")
        n = int(m.group(1))
        self.pos = m.end()
        if self.pos + n > len(self.data):
            raise self.fail("literal runs past the end")
        body = self.data[self.pos : self.pos + n]
        if not binary and 0 in body:
            raise self.fail("NUL in a non-binary literal")
        self.pos += n
        s = Str(body)
        s.literal = True
        return s

    def atom_or_number(self) -> Value:
        start = self.pos
        if self.peek() == ord("\\"):  # flag / mailbox attribute
            self.pos += 1
            if self.peek() == ord("*"):
                self.pos += 1
                return Atom(self.data[start : self.pos].decode())
        while not self.at_end():
            c = self.data[self.pos]
            if c == ord("["):
                # Fetch attribute with a section (BODY[1.2], BODY[HEADER.FIELDS (A B)]):
                # the section may itself hold a parenthesised list of header names.
                end = self.data.find(b"]", self.pos)
                if end < 0:
                    raise self.fail("unterminated section")
                self.pos = end + 1
                if self.peek() == ord("<"):
                    m = re.compile(rb"<\d+>").match(self.data, self.pos)
                    if not m:
                        raise self.fail("bad <origin>")
                    self.pos = m.end()
            elif c in _ATOM_CHARS or c in (ord("*"), ord("%")):  # wildcards: LIST mailbox names
                self.pos += 1
            else:
                break
        tok = self.data[start : self.pos]
        if not tok or tok == b"\\":
            raise self.fail("expected a value")
        if tok.isdigit():
            return int(tok)
        if tok == b"NIL":
            return None
        try:
            return Atom(tok.decode("ascii"))
        except UnicodeDecodeError as exc:
            raise self.fail("8-bit byte in an atom") from exc

    def values_to_end(self) -> tuple:
        """SP-separated values to the end of the response (THREAD lists may abut: `(1)(2 3)`)."""
        out: list[Value] = []
        while not self.at_end():
            out.append(self.value())
            if self.at_end():
                break
            if self.peek() == ord(" "):
                self.pos += 1
                if self.at_end() or self.peek() == ord(" "):
                    raise self.fail("trailing or double space")
            elif not (self.peek() == ord("(") and self.data[self.pos - 1] == ord(")")):
                raise self.fail("expected SP between values")
        return tuple(out)


@dataclass
class StatusResponse:
    """OK / NO / BAD / BYE / PREAUTH, tagged or untagged: resp-text = ["[" resp-text-code "]" SP] text."""

    tag: str
    status: str
    code: tuple | None
    text: bytes


@dataclass
class DataResponse:
    """`* [number] NAME values...`."""

    number: int | None
    name: str
    values: tuple


_STATUS = {"OK", "NO", "BAD", "BYE", "PREAUTH"}


def parse_resp_text(p: Parser) -> tuple[tuple | None, bytes]:
    code = None
    if p.peek() == ord("["):
        end = p.data.find(b"]", p.pos)
        if end < 0:
            raise p.fail("unterminated resp-text-code")
        inner = Parser(p.data[p.pos + 1 : end], utf8=p.utf8)
        code = inner.values_to_end()
        if not code or not isinstance(code[0], Atom):
            raise p.fail("resp-text-code must start with an atom")
        p.pos = end + 1
        if p.at_end():
            return code, b""
        p.sp()
    text = p.data[p.pos :]
    if any(c in _QUOTED_FORBIDDEN for c in text):
        raise p.fail("CR/LF/NUL in resp-text")
    p.pos = len(p.data)
    return code, text


def parse_response(line: bytes, *, utf8: bool = False) -> StatusResponse | DataResponse:
    """One complete response (literals inline, without the final CRLF)."""
    p = Parser(line, utf8=utf8)
    m = re.compile(rb"(\*|[!#$&'+,\-./0-9:;<=>?@A-Z^_`a-z|}~]+) ").match(line)
    if not m:
        raise p.fail("expected a tag or '*' then SP")
    tag = m.group(1).decode()
    p.pos = m.end()
    word_m = re.compile(rb"[A-Za-z0-9.=\-]+").match(line, p.pos)
    if not word_m:
        raise p.fail("expected a response name or number")
    word = word_m.group(0).decode()
    if word.upper() in _STATUS:
        p.pos = word_m.end()
        if p.at_end():
            return StatusResponse(tag, word.upper(), None, b"")
        p.sp()
        code, text = parse_resp_text(p)
        return StatusResponse(tag, word.upper(), code, text)
    if tag != "*":
        raise p.fail("a tagged response must be OK, NO or BAD")
    number = None
    if word.isdigit():
        number = int(word)
        p.pos = word_m.end()
        p.sp()
        word_m = re.compile(rb"[A-Za-z0-9.=\-]+").match(line, p.pos)
        if not word_m:
            raise p.fail("expected a response name after the number")
        word = word_m.group(0).decode()
    p.pos = word_m.end()
    name = word.upper()
    values: tuple = ()
    if not p.at_end():
        p.sp()
        values = p.values_to_end()
    resp = DataResponse(number, name, values)
    check_data(resp)
    return resp


# --- structure checks (RFC 9051 section 9) -------------------------------------------------------


def _nstring(v: Value, what: str) -> None:
    if not (v is None or isinstance(v, Str)):
        raise GrammarError(f"{what}: expected nstring, got {v!r}")


def _string(v: Value, what: str) -> None:
    if not isinstance(v, Str):
        raise GrammarError(f"{what}: expected string, got {v!r}")


def _number(v: Value, what: str) -> None:
    if not isinstance(v, int) or isinstance(v, bool):
        raise GrammarError(f"{what}: expected number, got {v!r}")


def check_envelope(env: Value) -> None:
    if not isinstance(env, tuple) or len(env) != 10:
        raise GrammarError(f"envelope must be a list of 10, got {env!r}")
    _nstring(env[0], "env-date")
    _nstring(env[1], "env-subject")
    for i, name in zip(range(2, 8), ("from", "sender", "reply-to", "to", "cc", "bcc"), strict=True):
        addrs = env[i]
        if addrs is None:
            continue
        if not isinstance(addrs, tuple) or not addrs:
            raise GrammarError(f"env-{name}: expected NIL or a non-empty list of addresses, got {addrs!r}")
        for a in addrs:
            if not isinstance(a, tuple) or len(a) != 4:
                raise GrammarError(f"env-{name}: address must be a list of 4, got {a!r}")
            for part in a:
                _nstring(part, f"env-{name} address part")
    _nstring(env[8], "env-in-reply-to")
    _nstring(env[9], "env-message-id")


def _params(v: Value, what: str) -> None:
    if v is None:
        return
    if not isinstance(v, tuple) or not v or len(v) % 2:
        raise GrammarError(f"{what}: body-fld-param must be NIL or an even non-empty list, got {v!r}")
    for x in v:
        _string(x, what)


def _extension(v: Value, what: str) -> None:
    if isinstance(v, tuple):
        for x in v:
            _extension(x, what)
    elif not (v is None or isinstance(v, Str | int)):
        raise GrammarError(f"{what}: body-extension must be nstring, number or list, got {v!r}")


def _dsp_lang_loc(rest: Sequence[Value], what: str) -> None:
    if rest:
        dsp = rest[0]
        if dsp is not None:
            if not isinstance(dsp, tuple) or len(dsp) != 2:
                raise GrammarError(f"{what}: body-fld-dsp must be NIL or (string params), got {dsp!r}")
            _string(dsp[0], what)
            _params(dsp[1], what)
    if len(rest) > 1:
        lang = rest[1]
        if isinstance(lang, tuple):
            if not lang:
                raise GrammarError(f"{what}: empty body-fld-lang list")
            for x in lang:
                _string(x, what)
        else:
            _nstring(lang, what)
    if len(rest) > 2:
        _nstring(rest[2], f"{what} body-fld-loc")
    for x in rest[3:]:
        _extension(x, what)


def check_body(body: Value, extensible: bool, what: str = "body") -> None:
    """BODY (extensible=False: no extension data allowed) or BODYSTRUCTURE."""
    if not isinstance(body, tuple) or not body:
        raise GrammarError(f"{what}: expected a body list, got {body!r}")
    if isinstance(body[0], tuple):  # body-type-mpart
        i = 0
        while i < len(body) and isinstance(body[i], tuple):
            check_body(body[i], extensible, f"{what}.{i + 1}")
            i += 1
        if i >= len(body):
            raise GrammarError(f"{what}: multipart without subtype")
        _string(body[i], f"{what} media-subtype")
        ext = body[i + 1 :]
        if ext and not extensible:
            raise GrammarError(f"{what}: BODY must not carry extension data: {ext!r}")
        if ext:
            _params(ext[0], f"{what} mpart params")
            _dsp_lang_loc(ext[1:], what)
        return
    if len(body) < 7:
        raise GrammarError(f"{what}: body-type-1part needs at least 7 fields, got {body!r}")
    _string(body[0], f"{what} media-type")
    _string(body[1], f"{what} media-subtype")
    _params(body[2], f"{what} params")
    _nstring(body[3], f"{what} id")
    _nstring(body[4], f"{what} description")
    _string(body[5], f"{what} encoding")
    _number(body[6], f"{what} octets")
    mtype, subtype = bytes(body[0]).lower(), bytes(body[1]).lower()
    rest = body[7:]
    if mtype == b"message" and subtype in (b"rfc822", b"global"):
        if len(rest) < 3:
            raise GrammarError(f"{what}: message/rfc822 needs envelope, body and lines")
        check_envelope(rest[0])
        check_body(rest[1], extensible, f"{what}.msg")
        _number(rest[2], f"{what} lines")
        rest = rest[3:]
    elif mtype == b"text":
        if not rest:
            raise GrammarError(f"{what}: text part needs a line count")
        _number(rest[0], f"{what} lines")
        rest = rest[1:]
    if rest and not extensible:
        raise GrammarError(f"{what}: BODY must not carry extension data: {rest!r}")
    if rest:
        _nstring(rest[0], f"{what} md5")
        _dsp_lang_loc(rest[1:], what)


_FETCH_NSTRING = re.compile(r"^(BODY\[.*\](<\d+>)?|BINARY\[[0-9.]*\](<\d+>)?|RFC822(\.HEADER|\.TEXT)?)$", re.I)


def check_fetch(values: tuple) -> dict[str, Value]:
    if len(values) != 1 or not isinstance(values[0], tuple) or not values[0] or len(values[0]) % 2:
        raise GrammarError(f"FETCH needs one non-empty list of name/value pairs, got {values!r}")
    out: dict[str, Value] = {}
    items = values[0]
    for i in range(0, len(items), 2):
        name, v = items[i], items[i + 1]
        if not isinstance(name, Atom):
            raise GrammarError(f"FETCH item name must be an atom, got {name!r}")
        key = str(name).upper()
        if key == "ENVELOPE":
            check_envelope(v)
        elif key == "BODYSTRUCTURE":
            check_body(v, True)
        elif key == "BODY":
            check_body(v, False)
        elif key == "FLAGS":
            if not isinstance(v, tuple) or not all(isinstance(f, Atom) for f in v):
                raise GrammarError(f"FLAGS must be a list of flags, got {v!r}")
        elif key in ("UID", "RFC822.SIZE") or key.startswith("BINARY.SIZE["):
            _number(v, key)
        elif key == "INTERNALDATE":
            _string(v, key)
            if not re.fullmatch(rb'[ 0-9]\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}', bytes(v)):
                raise GrammarError(f"bad INTERNALDATE {v!r}")
        elif key == "MODSEQ":
            if not isinstance(v, tuple) or len(v) != 1:
                raise GrammarError(f"MODSEQ must be (n), got {v!r}")
            _number(v[0], key)
        elif key == "EMAILID" or key == "THREADID" or key == "SAVEDATE" or key == "PREVIEW":
            pass
        elif _FETCH_NSTRING.match(key):
            _nstring(v, key)
        else:
            raise GrammarError(f"unknown FETCH item {name!r}")
        out[key] = v
    return out


def check_data(r: DataResponse) -> None:
    """The shapes of the data responses the tests meet."""
    n = r.name
    v = r.values
    if r.number is not None:
        if n in ("EXISTS", "EXPUNGE", "RECENT"):
            if v:
                raise GrammarError(f"{n} takes no values: {v!r}")
        elif n == "FETCH":
            check_fetch(v)
        else:
            raise GrammarError(f"unknown numbered response {n}")
        return
    if n in ("SEARCH", "SORT"):
        nums = list(v)
        if nums and isinstance(nums[-1], tuple):  # (MODSEQ n) from CONDSTORE
            nums.pop()
        for x in nums:
            _number(x, n)
    elif n == "THREAD":
        def walk(t: Value) -> None:
            if isinstance(t, tuple):
                for x in t:
                    walk(x)
            else:
                _number(t, "THREAD")

        for t in v:
            if not isinstance(t, tuple):
                raise GrammarError(f"THREAD members must be lists, got {t!r}")
            walk(t)
    elif n in ("LIST", "LSUB"):
        if len(v) < 3 or not isinstance(v[0], tuple) or not all(isinstance(a, Atom) for a in v[0]):
            raise GrammarError(f"{n}: bad mailbox-list {v!r}")
        if not (v[1] is None or isinstance(v[1], Str)):
            raise GrammarError(f"{n}: delimiter must be a quoted char or NIL: {v[1]!r}")
        if not isinstance(v[2], Str | Atom):
            raise GrammarError(f"{n}: bad mailbox name {v[2]!r}")
        for ext in v[3:]:
            if not isinstance(ext, tuple):
                raise GrammarError(f"{n}: bad mbox-list-extended {ext!r}")
    elif n in ("FLAGS",):
        if len(v) != 1 or not isinstance(v[0], tuple):
            raise GrammarError(f"FLAGS: expected a flag list, got {v!r}")
    elif n in ("CAPABILITY", "ENABLED"):
        if not all(isinstance(x, Atom) for x in v):
            raise GrammarError(f"{n}: expected atoms, got {v!r}")
    elif n == "ID":
        if len(v) != 1 or not (v[0] is None or isinstance(v[0], tuple)):
            raise GrammarError(f"ID: expected NIL or a list, got {v!r}")
    elif n == "STATUS":
        if len(v) != 2 or not isinstance(v[1], tuple) or len(v[1]) % 2:
            raise GrammarError(f"STATUS: bad {v!r}")
    elif n in ("ESEARCH", "NAMESPACE", "QUOTA", "QUOTAROOT", "VANISHED"):
        pass
    else:
        raise GrammarError(f"unknown response {n}")


# --- a raw client ---------------------------------------------------------------------------------


@dataclass
class Result:
    tagged: StatusResponse
    untagged: list[StatusResponse | DataResponse] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)

    def ok(self) -> Result:
        if self.tagged.status != "OK":
            raise AssertionError(f"expected OK, got {self.tagged}")
        return self

    def data(self, name: str) -> list[DataResponse]:
        return [r for r in self.untagged if isinstance(r, DataResponse) and r.name == name]

    def fetches(self) -> dict[int, dict[str, Value]]:
        out: dict[int, dict[str, Value]] = {}
        for r in self.data("FETCH"):
            assert r.number is not None
            out.setdefault(r.number, {}).update(check_fetch(r.values))
        return out


class RawClient:
    """Sends command lines as given and reads whole responses (following literals)."""

    def __init__(self, host: str, port: int, *, tls: bool = False, timeout: float = 30.0) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(sock)
        self.sock = sock
        self.buf = b""
        self.n = 0
        self.utf8 = False
        self.greeting = parse_response(self.read_response())
        self.log: list[tuple[str, bytes]] = []

    def starttls(self) -> None:
        self.command("STARTTLS").ok()
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed; buffered: {self.buf[:200]!r}")
        self.buf += chunk

    def _line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[: i + 2], self.buf[i + 2 :]
                return line
            if b"\n" in self.buf:
                raise GrammarError(f"bare LF in a response line: {self.buf[:200]!r}")
            self._fill()

    def read_response(self) -> bytes:
        """One response with its literals, without the final CRLF."""
        out = b""
        while True:
            line = self._line()
            out += line
            m = re.search(rb"~?\{(\d+)\}\r\n$", line)
            if not m:
                return out[:-2]
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill()
            out += self.buf[:n]
            self.buf = self.buf[n:]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def tag(self) -> str:
        self.n += 1
        return f"T{self.n:04d}"

    def command(self, cmd: str | bytes, *literals: bytes, utf8: bool | None = None) -> Result:
        """cmd may hold `{n}` markers; each literal is sent after the server's continuation."""
        tag = self.tag()
        line = (cmd.encode() if isinstance(cmd, str) else cmd)
        self.log.append((tag, line))
        if not literals:
            self.send(tag.encode() + b" " + line + b"\r\n")
            return self.read_until(tag, utf8)
        # Send up to each literal marker, wait for "+", send the literal, and carry on.
        pieces = re.split(rb"(\{\d+\+?\})", line)
        out = tag.encode() + b" "
        lit = iter(literals)
        untagged: list[StatusResponse | DataResponse] = []
        raw: list[bytes] = []
        for piece in pieces:
            out += piece
            if re.fullmatch(rb"\{\d+\}", piece):
                self.send(out + b"\r\n")
                out = b""
                while True:
                    resp = self.read_response()
                    if resp.startswith(b"+"):
                        break
                    raw.append(resp)
                    r = parse_response(resp, utf8=self.utf8)
                    if isinstance(r, StatusResponse) and r.tag == tag:
                        return Result(r, untagged, raw)
                    untagged.append(r)
                out = next(lit)
            elif re.fullmatch(rb"\{\d+\+\}", piece):
                out += b"\r\n" + next(lit)
        self.send(out + b"\r\n")
        res = self.read_until(tag, utf8)
        res.untagged[:0] = untagged
        res.raw[:0] = raw
        return res

    def read_until(self, tag: str, utf8: bool | None = None) -> Result:
        untagged: list[StatusResponse | DataResponse] = []
        raw: list[bytes] = []
        while True:
            resp = self.read_response()
            raw.append(resp)
            r = parse_response(resp, utf8=self.utf8 if utf8 is None else utf8)
            if isinstance(r, StatusResponse) and r.tag == tag:
                return Result(r, untagged, raw)
            if isinstance(r, StatusResponse) and r.tag != "*":
                raise GrammarError(f"response with unknown tag {r.tag}: {resp!r}")
            untagged.append(r)

    def read_untagged(self, timeout: float) -> list[StatusResponse | DataResponse]:
        """Whatever untagged responses arrive within timeout (used during IDLE)."""
        out: list[StatusResponse | DataResponse] = []
        deadline = time.monotonic() + timeout
        old = self.sock.gettimeout()
        try:
            while True:
                if b"\r\n" in self.buf:
                    out.append(parse_response(self.read_response(), utf8=self.utf8))
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    return out
                self.sock.settimeout(left)
                try:
                    self._fill()
                except TimeoutError:
                    return out
        finally:
            self.sock.settimeout(old)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def iter_sections(body: Value, prefix: str = "") -> Iterator[tuple[str, tuple]]:
    """(part number, body) for each leaf and multipart of a BODYSTRUCTURE, as BODY[] sections."""
    assert isinstance(body, tuple)
    if isinstance(body[0], tuple):
        i = 0
        while i < len(body) and isinstance(body[i], tuple):
            num = f"{prefix}{i + 1}"
            yield num, body[i]
            yield from iter_sections(body[i], num + ".")
            i += 1
    elif bytes(body[0]).lower() == b"message" and len(body) > 8 and isinstance(body[8], tuple):
        inner = body[8]
        if isinstance(inner[0], tuple):
            yield from iter_sections(inner, prefix)
