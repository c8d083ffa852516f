"""THREAD (RFC 5256): REFERENCES and ORDEREDSUBJECT."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.commands.search import SearchKey, parse_charset, parse_criteria
from mailcove.proto.imap.parser import ParseError, Parser

__all__ = ["Thread", "parse"]

ALGORITHMS = frozenset({"REFERENCES", "ORDEREDSUBJECT"})


@command
class Thread(Command):
    name: ClassVar[str] = "THREAD"
    algorithm: str
    charset: str
    criteria: SearchKey


def parse(p: Parser, tag: str, uid: bool) -> Thread:
    p.sp()
    alg = p.upper_atom()
    if alg not in ALGORITHMS:
        raise ParseError(f"Unknown THREAD algorithm {alg}")
    p.sp()
    charset = parse_charset(p)
    p.sp()
    criteria = parse_criteria(p, charset)
    p.end()
    return Thread(tag=tag, uid=uid, algorithm=alg, charset=charset, criteria=criteria)
