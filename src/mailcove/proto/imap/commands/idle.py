"""IDLE (RFC 2177 / §6.3.13): the session sends ``+ idling`` and calls
`ImapReceiver.start_idle()`; the receiver then yields `IdleDone` on ``DONE``."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import Parser

__all__ = ["Idle", "parse"]


@command
class Idle(Command):
    name: ClassVar[str] = "IDLE"


def parse(p: Parser, tag: str, uid: bool) -> Idle:
    p.end()
    return Idle(tag=tag)
