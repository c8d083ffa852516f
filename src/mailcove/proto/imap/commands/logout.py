"""LOGOUT (§6.1.3)."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import Parser

__all__ = ["Logout", "parse"]


@command
class Logout(Command):
    name: ClassVar[str] = "LOGOUT"


def parse(p: Parser, tag: str, uid: bool) -> Logout:
    p.end()
    return Logout(tag=tag)
