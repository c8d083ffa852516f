"""STARTTLS (§6.2.1): the session must call `ImapReceiver.drop_buffer()` and discard
what it returns (bytes pipelined before the handshake are an injection attack)."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import Parser

__all__ = ["StartTLS", "parse"]


@command
class StartTLS(Command):
    name: ClassVar[str] = "STARTTLS"


def parse(p: Parser, tag: str, uid: bool) -> StartTLS:
    p.end()
    return StartTLS(tag=tag)
