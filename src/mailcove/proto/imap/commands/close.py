"""CLOSE (§6.4.1): silent expunge, then unselect."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import Parser

__all__ = ["Close", "parse"]


@command
class Close(Command):
    name: ClassVar[str] = "CLOSE"


def parse(p: Parser, tag: str, uid: bool) -> Close:
    p.end()
    return Close(tag=tag)
