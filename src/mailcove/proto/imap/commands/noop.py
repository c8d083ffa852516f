"""NOOP (§6.1.2): also the poll for mailbox updates."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import Parser

__all__ = ["Noop", "parse"]


@command
class Noop(Command):
    name: ClassVar[str] = "NOOP"


def parse(p: Parser, tag: str, uid: bool) -> Noop:
    p.end()
    return Noop(tag=tag)
