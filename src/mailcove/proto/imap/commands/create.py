r"""CREATE (RFC 9051 §6.3.4) with CREATE-SPECIAL-USE (RFC 6154 §3): ``CREATE name (USE (\Drafts))``."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import ParseError, Parser

__all__ = ["Create", "parse"]

_SPECIAL_USE = {u.upper(): u for u in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent",
                                        "\\Trash", "\\Important")}


@command
class Create(Command):
    name: ClassVar[str] = "CREATE"
    mailbox: str
    special_use: tuple[str, ...] = ()


def parse(p: Parser, tag: str, uid: bool) -> Create:
    p.sp()
    mailbox = p.mailbox()
    uses: list[str] = []
    if p.maybe_sp():
        p.open()
        while True:
            word = p.upper_atom()
            if word != "USE":
                raise ParseError(f"Unknown CREATE parameter {word}")
            p.sp()
            p.open()
            if not p.accept(b")"):
                while True:
                    p.expect(b"\\")
                    use = "\\" + p.atom()
                    canon = _SPECIAL_USE.get(use.upper())
                    if canon is None:
                        raise ParseError(f"Unknown special-use {use}", code="USEATTR", status="NO")
                    uses.append(canon)
                    if not p.maybe_sp():
                        break
                p.close()
            else:
                p.depth -= 1
            if not p.maybe_sp():
                break
        p.close()
    p.end()
    return Create(tag=tag, mailbox=mailbox, special_use=tuple(uses))
