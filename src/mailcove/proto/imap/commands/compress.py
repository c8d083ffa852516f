"""COMPRESS (RFC 4978). After the tagged OK the session calls `ImapReceiver.drop_buffer()`: any bytes it
returns are already compressed and must go through the inflater before `receive_data`."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import Parser

__all__ = ["Compress", "parse"]


@command
class Compress(Command):
    name: ClassVar[str] = "COMPRESS"
    mechanism: str


def parse(p: Parser, tag: str, uid: bool) -> Compress:
    p.sp()
    mech = p.upper_atom()
    p.end()
    return Compress(tag=tag, mechanism=mech)
