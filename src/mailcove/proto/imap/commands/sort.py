"""SORT (RFC 5256, with SORT=DISPLAY from RFC 5957 and ESORT RETURN options from RFC 5267)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.commands.search import SearchKey, parse_charset, parse_criteria, parse_return
from mailcove.proto.imap.parser import ParseError, Parser

__all__ = ["Sort", "ordered_set", "parse"]

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


def ordered_set(numbers: Sequence[int]) -> str:
    """A sequence-set that keeps the given order (ESORT ALL, RFC 5267 3.2): only a run that
    ascends by one is written as a range, `[3, 4, 5, 1]` -> ``3:5,1``; nothing is re-ordered
    or merged. Empty input gives ""."""
    out: list[str] = []
    i, n = 0, len(numbers)
    while i < n:
        j = i
        while j + 1 < n and numbers[j + 1] == numbers[j] + 1:
            j += 1
        out.append(str(numbers[i]) if i == j else f"{numbers[i]}:{numbers[j]}")
        i = j + 1
    return ",".join(out)
