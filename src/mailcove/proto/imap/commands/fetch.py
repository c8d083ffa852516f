"""FETCH and UID FETCH (RFC 9051 §6.4.5): every data item, BINARY (RFC 3516), CONDSTORE MODSEQ and
CHANGEDSINCE (RFC 7162 §3.1.4), QRESYNC VANISHED (§3.2.6)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import ParseError, Parser
from mailcove.proto.imap.seqset import SeqSet

__all__ = ["Fetch", "FetchAtt", "Section", "parse"]

_SIMPLE = frozenset({"ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE",
                     "RFC822.TEXT", "BODYSTRUCTURE", "UID", "MODSEQ", "BODY", "SAVEDATE", "EMAILID", "THREADID"})
_MACROS = {"ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
           "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
           "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY")}
_ITEM = re.compile(rb"[A-Za-z0-9.]+")
_PART = re.compile(rb"[1-9][0-9]{0,8}(?:\.[1-9][0-9]{0,8})*")
MAX_HEADER_FIELDS = 200
# the common spelling of a header list: atoms separated by single spaces (one regex, no loop)
_FIELD_ATOMS = re.compile(rb"\(([^(){ \x00-\x1f\x7f%*\"\\\x80-\xff:]+(?: [^(){ \x00-\x1f\x7f%*\"\\\x80-\xff:]+)*)\)")
# an item list with at most one level of inner parentheses (HEADER.FIELDS): clients send the same
# few lists over and over with different sequence sets, so parsed lists are cached (bounded; item
# lists hold no user data)
_ITEM_LIST = re.compile(rb"\((?:[^()\r\n]|\([^()\r\n]*\))*\)")
_LIST_CACHE: dict[tuple[bytes, int], tuple[FetchAtt, ...]] = {}
_LIST_CACHE_MAX = 1024


@dataclass(frozen=True, slots=True)
class Section:
    """``section-spec``: ``part`` numbers (empty for the whole message) and ``text`` one of None
    (the part's body, or the whole message), "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT",
    "TEXT", "MIME". ``fields`` keep the client's spelling: the response echoes them."""

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        out = ".".join(map(str, self.part))
        if self.text:
            out = f"{out}.{self.text}" if out else self.text
            if self.fields:
                out += " (" + " ".join(self.fields) + ")"
        return out


@dataclass(frozen=True, slots=True)
class FetchAtt:
    """One data item. ``name`` is the upper-case item: FLAGS, ENVELOPE, ... or BODY / BINARY /
    BINARY.SIZE with a ``section`` (``BODY`` without a section is the non-extensible BODYSTRUCTURE).
    ``peek`` is True for BODY.PEEK / BINARY.PEEK; ``partial`` is (offset, length)."""

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False

    @property
    def sets_seen(self) -> bool:
        return (self.section is not None and not self.peek and self.name in ("BODY", "BINARY")) or \
            self.name in ("RFC822", "RFC822.TEXT")

    def response_name(self) -> str:
        """The item name in the FETCH response: BODY[1.2]<0> for BODY.PEEK[1.2]<0.100>."""
        if self.section is None:
            return self.name
        out = f"{self.name}[{self.section}]"
        if self.partial is not None:
            out += f"<{self.partial[0]}>"
        return out

    def __str__(self) -> str:
        if self.section is None:
            return self.name
        out = f"{self.name}{'.PEEK' if self.peek else ''}[{self.section}]"
        if self.partial is not None:
            out += f"<{self.partial[0]}.{self.partial[1]}>"
        return out


@command
class Fetch(Command):
    """``items`` in the client's order, macros expanded, duplicates kept out. UID FETCH does not
    add UID here: the session always sends it for UID FETCH (RFC 9051 §6.4.9)."""

    name: ClassVar[str] = "FETCH"
    seqset: SeqSet
    items: tuple[FetchAtt, ...]
    changedsince: int | None = None
    vanished: bool = False


def _section(p: Parser, binary: bool) -> Section:
    p.expect(b"[")
    part: tuple[int, ...] = ()
    m = _PART.match(p.buf, p.pos)
    if m:
        part = tuple(int(x) for x in m.group().split(b"."))
        p.pos = m.end()
        if not p.accept(b"."):
            p.expect(b"]")
            return Section(part)
    elif p.accept(b"]"):
        return Section()
    if binary:
        raise p.error("part number")
    m = _ITEM.match(p.buf, p.pos)
    text = m.group().decode().upper() if m else ""
    if text not in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME") or (text == "MIME" and not part):
        raise p.error("section text")
    p.pos = m.end() if m else p.pos
    fields: list[str] = []
    if text.startswith("HEADER.FIELDS"):
        p.sp()
        fm = _FIELD_ATOMS.match(p.buf, p.pos)
        if fm is not None and p.depth < p.max_depth:
            names = fm.group(1).decode("ascii").split(" ")
            if len(names) > MAX_HEADER_FIELDS:
                raise ParseError("Too many header fields")
            p.pos = fm.end()
            p.expect(b"]")
            return Section(part, text, tuple(names))
        p.open()
        while True:
            f = p.astring()
            if not f or any(c <= 0x20 or c >= 0x7F or c == 0x3A for c in f):
                raise ParseError("Invalid header field name")
            fields.append(f.decode("ascii"))
            if len(fields) > MAX_HEADER_FIELDS:
                raise ParseError("Too many header fields")
            if not p.maybe_sp():
                break
        p.close()
    p.expect(b"]")
    return Section(part, text, tuple(fields))


def _partial(p: Parser) -> tuple[int, int] | None:
    if not p.accept(b"<"):
        return None
    start = p.number()
    p.expect(b".")
    length = p.nz_number()
    p.expect(b">")
    return (start, length)


def _att_list(p: Parser) -> tuple[FetchAtt, ...]:
    p.open()
    items: list[FetchAtt] = []
    seen: set[FetchAtt] = set()
    while True:
        a = _att(p)
        if a not in seen:
            seen.add(a)
            items.append(a)
        if not p.maybe_sp():
            break
    p.close()
    return tuple(items)


def _att(p: Parser) -> FetchAtt:
    m = _ITEM.match(p.buf, p.pos)
    if not m:
        raise p.error("fetch attribute")
    word = m.group().decode().upper()
    p.pos = m.end()
    if p.peek() == 0x5B:  # [
        if word in ("BODY", "BODY.PEEK"):
            return FetchAtt("BODY", _section(p, False), _partial(p), word == "BODY.PEEK")
        if word in ("BINARY", "BINARY.PEEK"):
            return FetchAtt("BINARY", _section(p, True), _partial(p), word == "BINARY.PEEK")
        if word == "BINARY.SIZE":
            return FetchAtt("BINARY.SIZE", _section(p, True))
        raise ParseError(f"{word} takes no section")
    if word in _SIMPLE:
        return FetchAtt(word)
    raise ParseError(f"Unknown FETCH attribute {word}")


def parse(p: Parser, tag: str, uid: bool) -> Fetch:
    p.sp()
    s = p.seqset()
    p.sp()
    items: list[FetchAtt] | tuple[FetchAtt, ...] = []
    if p.peek() == 0x28:
        lm = _ITEM_LIST.match(p.buf, p.pos)
        key = (lm.group(), p.max_depth) if lm is not None else None
        cached = _LIST_CACHE.get(key) if key is not None else None
        if cached is not None and lm is not None:
            items = cached
            p.pos = lm.end()
        else:
            items = _att_list(p)
            if key is not None:
                if len(_LIST_CACHE) >= _LIST_CACHE_MAX:
                    _LIST_CACHE.clear()
                _LIST_CACHE[key] = items
    else:
        start = p.pos
        m = _ITEM.match(p.buf, p.pos)
        macro = _MACROS.get(m.group().decode().upper()) if m else None
        if macro is not None and m is not None and p.buf[m.end():m.end() + 1] != b"[":
            p.pos = m.end()
            items = [FetchAtt(n) for n in macro]
        else:
            p.pos = start
            items = [_att(p)]
    changedsince = None
    vanished = False
    if p.maybe_sp():
        p.open()
        while True:
            word = p.upper_atom()
            if word == "CHANGEDSINCE":
                p.sp()
                changedsince = p.number64()
                if changedsince == 0:
                    raise ParseError("CHANGEDSINCE must be non-zero")
            elif word == "VANISHED":
                vanished = True
            else:
                raise ParseError(f"Unknown FETCH modifier {word}")
            if not p.maybe_sp():
                break
        p.close()
    if vanished and (not uid or changedsince is None):
        # RFC 7162 §3.2.6: VANISHED only with UID FETCH and CHANGEDSINCE
        raise ParseError("VANISHED needs UID FETCH and CHANGEDSINCE")
    p.end()
    return Fetch(tag=tag, uid=uid, seqset=s, items=tuple(items), changedsince=changedsince, vanished=vanished)
