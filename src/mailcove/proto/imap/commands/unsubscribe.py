"""UNSUBSCRIBE (RFC 9051 §6.3)."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import Parser

__all__ = ["Unsubscribe", "parse"]


@command
class Unsubscribe(Command):
    name: ClassVar[str] = "UNSUBSCRIBE"
    mailbox: str


def parse(p: Parser, tag: str, uid: bool) -> Unsubscribe:
    p.sp()
    mailbox = p.mailbox()
    p.end()
    return Unsubscribe(tag=tag, mailbox=mailbox)
