"""UNSELECT (RFC 3691 / §6.4.2)."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import Parser

__all__ = ["Unselect", "parse"]


@command
class Unselect(Command):
    name: ClassVar[str] = "UNSELECT"


def parse(p: Parser, tag: str, uid: bool) -> Unselect:
    p.end()
    return Unselect(tag=tag)
