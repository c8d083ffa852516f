"""SUBSCRIBE (RFC 9051 §6.3)."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import Parser

__all__ = ["Subscribe", "parse"]


@command
class Subscribe(Command):
    name: ClassVar[str] = "SUBSCRIBE"
    mailbox: str


def parse(p: Parser, tag: str, uid: bool) -> Subscribe:
    p.sp()
    mailbox = p.mailbox()
    p.end()
    return Subscribe(tag=tag, mailbox=mailbox)
