"""EXPUNGE (RFC 9051 §6.4.3) and UID EXPUNGE (UIDPLUS, §6.4.9)."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import Parser
from mailcove.proto.imap.seqset import SeqSet

__all__ = ["Expunge", "parse"]


@command
class Expunge(Command):
    """``uids`` is set only for UID EXPUNGE."""

    name: ClassVar[str] = "EXPUNGE"
    uids: SeqSet | None = None


def parse(p: Parser, tag: str, uid: bool) -> Expunge:
    uids = None
    if uid:
        p.sp()
        uids = p.seqset()
    p.end()
    return Expunge(tag=tag, uid=uid, uids=uids)
