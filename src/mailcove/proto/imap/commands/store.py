"""STORE (RFC 9051 §6.4.6) with UNCHANGEDSINCE (RFC 7162 §3.1.3)."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import ParseError, Parser
from mailcove.proto.imap.seqset import SeqSet

__all__ = ["Store", "parse"]


@command
class Store(Command):
    """``mode`` is "" (replace), "+" (add) or "-" (remove)."""

    name: ClassVar[str] = "STORE"
    seqset: SeqSet
    mode: str
    silent: bool
    flags: tuple[str, ...]
    unchangedsince: int | None = None


def parse(p: Parser, tag: str, uid: bool) -> Store:
    p.sp()
    s = p.seqset()
    p.sp()
    unchanged = None
    if p.peek() == 0x28:
        p.open()
        word = p.upper_atom()
        if word != "UNCHANGEDSINCE":
            raise ParseError(f"Unknown STORE modifier {word}")
        p.sp()
        unchanged = p.number64()
        p.close()
        p.sp()
    c = p.peek()
    mode = ""
    if c == 0x2B:
        mode = "+"
        p.pos += 1
    elif c == 0x2D:
        mode = "-"
        p.pos += 1
    if not p.accept(b"FLAGS"):
        raise p.error("FLAGS")
    silent = p.accept(b".SILENT")
    p.sp()
    flags = p.flags_or_list()
    p.end()
    return Store(tag=tag, uid=uid, seqset=s, mode=mode, silent=silent, flags=flags, unchangedsince=unchanged)
