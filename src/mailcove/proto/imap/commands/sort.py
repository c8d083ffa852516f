"""SORT (RFC 5256, with SORT=DISPLAY from RFC 5957 and ESORT RETURN options from RFC 5267)."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.commands.search import SearchKey, parse_charset, parse_criteria, parse_return
from mailcove.proto.imap.parser import ParseError, Parser

__all__ = ["Sort", "parse"]

SORT_KEYS = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"})


@command
class Sort(Command):
    """``criteria`` is a tuple of (key, reverse) pairs, e.g. (("DATE", True), ("SUBJECT", False))."""

    name: ClassVar[str] = "SORT"
    sort: tuple[tuple[str, bool], ...]
    charset: str
    criteria: SearchKey
    return_opts: tuple[str, ...] | None = None


def parse(p: Parser, tag: str, uid: bool) -> Sort:
    p.sp()
    ret = None
    if p.buf[p.pos:p.pos + 7].upper() == b"RETURN ":
        ret = parse_return(p)
    p.open()
    keys: list[tuple[str, bool]] = []
    while True:
        reverse = p.accept(b"REVERSE ")
        k = p.upper_atom()
        if k not in SORT_KEYS:
            raise ParseError(f"Unknown sort key {k}")
        keys.append((k, reverse))
        if not p.maybe_sp():
            break
    p.close()
    p.sp()
    charset = parse_charset(p)
    p.sp()
    criteria = parse_criteria(p, charset)
    p.end()
    return Sort(tag=tag, uid=uid, sort=tuple(keys), charset=charset, criteria=criteria, return_opts=ret)
