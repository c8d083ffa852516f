"""NAMESPACE (RFC 2342 / §6.3.10)."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import Parser

__all__ = ["Namespace", "parse"]


@command
class Namespace(Command):
    name: ClassVar[str] = "NAMESPACE"


def parse(p: Parser, tag: str, uid: bool) -> Namespace:
    p.end()
    return Namespace(tag=tag)
