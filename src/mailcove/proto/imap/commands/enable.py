"""ENABLE (RFC 5161 / RFC 9051 §6.3.1)."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import ParseError, Parser

__all__ = ["Enable", "parse"]


@command
class Enable(Command):
    """``capabilities`` upper-cased, in the client's order."""

    name: ClassVar[str] = "ENABLE"
    capabilities: tuple[str, ...]


def parse(p: Parser, tag: str, uid: bool) -> Enable:
    caps = []
    while p.maybe_sp():
        caps.append(p.upper_atom())
    if not caps:
        raise ParseError("ENABLE needs at least one capability")
    p.end()
    return Enable(tag=tag, capabilities=tuple(caps))
