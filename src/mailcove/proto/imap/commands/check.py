"""CHECK (RFC 3501 §6.4.1; NOOP-equivalent in rev2)."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import Parser

__all__ = ["Check", "parse"]


@command
class Check(Command):
    name: ClassVar[str] = "CHECK"


def parse(p: Parser, tag: str, uid: bool) -> Check:
    p.end()
    return Check(tag=tag)
