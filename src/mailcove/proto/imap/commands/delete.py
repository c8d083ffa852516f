"""DELETE (RFC 9051 §6.3)."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import Parser

__all__ = ["Delete", "parse"]


@command
class Delete(Command):
    name: ClassVar[str] = "DELETE"
    mailbox: str


def parse(p: Parser, tag: str, uid: bool) -> Delete:
    p.sp()
    mailbox = p.mailbox()
    p.end()
    return Delete(tag=tag, mailbox=mailbox)
