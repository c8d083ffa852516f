"""COPY and MOVE (RFC 9051 §6.4.7-8, RFC 6851), and their UID forms."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import Parser
from mailcove.proto.imap.seqset import SeqSet

__all__ = ["Copy", "Move", "parse_copy", "parse_move"]


@command
class Copy(Command):
    name: ClassVar[str] = "COPY"
    seqset: SeqSet
    mailbox: str


@command
class Move(Copy):
    name: ClassVar[str] = "MOVE"


def parse_copy(p: Parser, tag: str, uid: bool) -> Copy:
    p.sp()
    s = p.seqset()
    p.sp()
    mailbox = p.mailbox()
    p.end()
    return Copy(tag=tag, uid=uid, seqset=s, mailbox=mailbox)


def parse_move(p: Parser, tag: str, uid: bool) -> Move:
    p.sp()
    s = p.seqset()
    p.sp()
    mailbox = p.mailbox()
    p.end()
    return Move(tag=tag, uid=uid, seqset=s, mailbox=mailbox)
