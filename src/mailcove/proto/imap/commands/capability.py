"""CAPABILITY (RFC 9051 §6.1.1)."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import Parser

__all__ = ["Capability", "parse"]


@command
class Capability(Command):
    name: ClassVar[str] = "CAPABILITY"


def parse(p: Parser, tag: str, uid: bool) -> Capability:
    p.end()
    return Capability(tag=tag)
