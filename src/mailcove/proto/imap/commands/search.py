"""SEARCH (RFC 9051 §6.4.4): the whole search-key tree, CHARSET, ESEARCH RETURN options
(RFC 4731 / rev2), SEARCHRES ``$`` (RFC 5182) and CONDSTORE MODSEQ (RFC 7162 §3.1.5).

The tree uses a few node types instead of one class per key: `Flag` covers the 16 flag keys,
`Text` the 7 string keys, `Date` the 6 date keys. Strings are decoded from the CHARSET (UTF-8 or
US-ASCII; anything else is ``NO [BADCHARSET]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date as Date
from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import ParseError, Parser
from mailcove.proto.imap.seqset import SeqSet

__all__ = ["All", "And", "DateKey", "Flag", "Header", "ModSeq", "Not", "Or", "Search", "SearchKey",
           "SeqKey", "Size", "Text", "UidKey", "parse", "parse_criteria"]

CHARSETS = ("US-ASCII", "UTF-8")
# Evaluation costs (search keys) x (messages): a 64 KiB line holds ~13,000 keys, which over
# 10,000 messages kept the server busy for half a minute. Far above what clients send (a
# filter of a few dozen keys); more is BAD [LIMIT].
MAX_SEARCH_KEYS = 1000
RETURN_OPTS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})


@dataclass(frozen=True, slots=True)
class All:
    """ALL (and the empty conjunction)."""


@dataclass(frozen=True, slots=True)
class Flag:
    """A flag key: ``flag`` is the system flag (\\Seen, \\Recent, ...) or keyword; ``present``
    False for UNSEEN, UNKEYWORD, ... NEW is And(Flag(\\Recent), Flag(\\Seen, False)), OLD is
    Flag(\\Recent, False)."""

    flag: str
    present: bool = True


@dataclass(frozen=True, slots=True)
class Text:
    """BCC, BODY, CC, FROM, SUBJECT, TEXT, TO: ``field`` upper-case."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class Header:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class DateKey:
    """``sent`` False for BEFORE/ON/SINCE (internal date), True for SENTBEFORE/SENTON/SENTSINCE;
    ``op`` "BEFORE", "ON" or "SINCE"."""

    op: str
    date: Date
    sent: bool = False


@dataclass(frozen=True, slots=True)
class Size:
    """LARGER (``larger`` True) or SMALLER."""

    larger: bool
    size: int


@dataclass(frozen=True, slots=True)
class SeqKey:
    seqset: SeqSet


@dataclass(frozen=True, slots=True)
class UidKey:
    seqset: SeqSet


@dataclass(frozen=True, slots=True)
class ModSeq:
    """MODSEQ [entry-name entry-type] n; ``entry`` is (name, "priv"|"shared"|"all") or None."""

    modseq: int
    entry: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Not:
    key: SearchKey


@dataclass(frozen=True, slots=True)
class Or:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class And:
    keys: tuple[SearchKey, ...]


@dataclass(frozen=True, slots=True)
class Within:
    """OLDER / YOUNGER (RFC 5032): ``older`` True for OLDER, ``seconds``."""

    older: bool
    seconds: int


SearchKey = All | Flag | Text | Header | DateKey | Size | SeqKey | UidKey | ModSeq | Not | Or | And | Within

_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True), "DELETED": ("\\Deleted", True), "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True), "SEEN": ("\\Seen", True), "RECENT": ("\\Recent", True),
    "UNANSWERED": ("\\Answered", False), "UNDELETED": ("\\Deleted", False), "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False), "UNSEEN": ("\\Seen", False), "OLD": ("\\Recent", False),
}
_TEXT_KEYS = frozenset({"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"})
_DATE_KEYS = {"BEFORE": ("BEFORE", False), "ON": ("ON", False), "SINCE": ("SINCE", False),
              "SENTBEFORE": ("BEFORE", True), "SENTON": ("ON", True), "SENTSINCE": ("SINCE", True)}


@command
class Search(Command):
    """``return_opts`` is None for a plain SEARCH (answered with ``* SEARCH``), a tuple (maybe
    empty, meaning ALL) for ``RETURN (...)`` (answered with ``* ESEARCH``)."""

    name: ClassVar[str] = "SEARCH"
    charset: str | None
    criteria: SearchKey
    return_opts: tuple[str, ...] | None = None


class _Ctx:
    __slots__ = ("charset", "keys")

    def __init__(self, charset: str | None) -> None:
        self.charset = charset
        self.keys = 0  # search keys parsed so far (MAX_SEARCH_KEYS)


def _value(p: Parser, ctx: _Ctx) -> str:
    raw = p.astring()
    if ctx.charset == "US-ASCII" and not raw.isascii():
        raise ParseError("8-bit data in a US-ASCII search string")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("Invalid UTF-8 in a search string") from None


def _key(p: Parser, ctx: _Ctx) -> SearchKey:
    ctx.keys += 1
    if ctx.keys > MAX_SEARCH_KEYS:
        raise ParseError(f"More than {MAX_SEARCH_KEYS} search keys", code="LIMIT")
    c = p.peek()
    if c == 0x28:
        p.open()
        keys = [_key(p, ctx)]
        while p.maybe_sp():
            keys.append(_key(p, ctx))
        p.close()
        return keys[0] if len(keys) == 1 else And(tuple(keys))
    if 0x30 <= c <= 0x39 or c in (0x2A, 0x24):  # digit, *, $
        return SeqKey(p.seqset())
    word = p.upper_atom()
    fk = _FLAG_KEYS.get(word)
    if fk is not None:
        return Flag(*fk)
    if word in _TEXT_KEYS:
        p.sp()
        return Text(word, _value(p, ctx))
    dk = _DATE_KEYS.get(word)
    if dk is not None:
        p.sp()
        return DateKey(dk[0], p.date(), dk[1])
    if word == "ALL":
        return All()
    if word == "NEW":
        return And((Flag("\\Recent"), Flag("\\Seen", False)))
    if word in ("KEYWORD", "UNKEYWORD"):
        p.sp()
        return Flag(p.atom(), word == "KEYWORD")
    if word == "HEADER":
        p.sp()
        name = p.astring()
        if not name or any(b <= 0x20 or b >= 0x7F or b == 0x3A for b in name):
            raise ParseError("Invalid header field name")
        p.sp()
        return Header(name.decode("ascii"), _value(p, ctx))
    if word in ("LARGER", "SMALLER"):
        p.sp()
        return Size(word == "LARGER", p.number64())
    if word == "NOT":
        p.sp()
        p.depth += 1  # NOT and OR nest like parentheses: bound them the same way
        if p.depth > p.max_depth:
            raise ParseError("Search key nested too deeply", code="LIMIT")
        k = _key(p, ctx)
        p.depth -= 1
        return Not(k)
    if word == "OR":
        p.sp()
        p.depth += 1
        if p.depth > p.max_depth:
            raise ParseError("Search key nested too deeply", code="LIMIT")
        a = _key(p, ctx)
        p.sp()
        b = _key(p, ctx)
        p.depth -= 1
        return Or(a, b)
    if word == "UID":
        p.sp()
        return UidKey(p.seqset())
    if word == "MODSEQ":
        p.sp()
        entry = None
        if p.peek() == 0x22:
            ename = p.quoted().decode("utf-8", "replace")
            p.sp()
            etype = p.atom().lower()
            if etype not in ("priv", "shared", "all"):
                raise ParseError("Invalid MODSEQ entry type")
            p.sp()
            entry = (ename, etype)
        return ModSeq(p.number64(), entry)
    if word in ("OLDER", "YOUNGER"):
        p.sp()
        return Within(word == "OLDER", p.nz_number())
    raise ParseError(f"Unknown search key {word}")


def parse_criteria(p: Parser, ctx_charset: str | None) -> SearchKey:
    """``1*search-key`` separated by SP, up to the end of the command."""
    ctx = _Ctx(ctx_charset)
    keys = [_key(p, ctx)]
    while p.maybe_sp():
        keys.append(_key(p, ctx))
    return keys[0] if len(keys) == 1 else And(tuple(keys))


def parse_charset(p: Parser) -> str:
    cs = p.astring().decode("ascii", "replace").upper()
    if cs not in CHARSETS:
        raise ParseError(f"Unsupported charset {cs}", code="BADCHARSET (US-ASCII UTF-8)", status="NO")
    return cs


def parse_return(p: Parser, allowed: frozenset[str] = RETURN_OPTS) -> tuple[str, ...]:
    p.expect(b"RETURN")
    p.sp()
    p.open()
    opts: list[str] = []
    if not p.accept(b")"):
        while True:
            o = p.upper_atom()
            if o not in allowed:
                raise ParseError(f"Unknown RETURN option {o}")
            if o not in opts:
                opts.append(o)
            if not p.maybe_sp():
                break
        p.close()
    else:
        p.depth -= 1
    p.sp()
    return tuple(opts)


def parse(p: Parser, tag: str, uid: bool) -> Search:
    p.sp()
    ret = None
    if p.buf[p.pos:p.pos + 7].upper() == b"RETURN ":
        ret = parse_return(p)
    charset = None
    if p.accept(b"CHARSET "):
        charset = parse_charset(p)
        p.sp()
    criteria = parse_criteria(p, charset)
    p.end()
    return Search(tag=tag, uid=uid, charset=charset, criteria=criteria, return_opts=ret)
