"""STATUS (RFC 9051 §6.3.11) with STATUS=SIZE (RFC 8438), CONDSTORE HIGHESTMODSEQ and
APPENDLIMIT (RFC 7889)."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import ParseError, Parser

__all__ = ["STATUS_ITEMS", "Status", "parse", "parse_status_items"]

STATUS_ITEMS = frozenset({"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE",
                          "HIGHESTMODSEQ", "APPENDLIMIT", "MAILBOXID"})


@command
class Status(Command):
    name: ClassVar[str] = "STATUS"
    mailbox: str
    items: tuple[str, ...]


def parse_status_items(p: Parser) -> tuple[str, ...]:
    p.open()
    items = []
    while True:
        item = p.upper_atom()
        if item not in STATUS_ITEMS:
            raise ParseError(f"Unknown STATUS item {item}")
        if item not in items:
            items.append(item)
        if not p.maybe_sp():
            break
    p.close()
    return tuple(items)


def parse(p: Parser, tag: str, uid: bool) -> Status:
    p.sp()
    mailbox = p.mailbox()
    p.sp()
    items = parse_status_items(p)
    p.end()
    return Status(tag=tag, mailbox=mailbox, items=items)
