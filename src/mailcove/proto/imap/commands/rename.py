"""RENAME (RFC 9051 §6.3.6)."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import Parser

__all__ = ["Rename", "parse"]


@command
class Rename(Command):
    name: ClassVar[str] = "RENAME"
    old: str
    new: str


def parse(p: Parser, tag: str, uid: bool) -> Rename:
    p.sp()
    old = p.mailbox()
    p.sp()
    new = p.mailbox()
    p.end()
    return Rename(tag=tag, old=old, new=new)
