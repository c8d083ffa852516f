"""APPEND (RFC 9051 §6.3.12) with MULTIAPPEND (RFC 3502), LITERAL+ and BINARY literal8 (RFC 3516).

APPEND is not delivered as one `Command`: the message is streamed. The receiver yields, per message,
`AppendStart` (mailbox, flags, date, size), then `AppendData` chunks adding up to ``size`` bytes; after
the last message `AppendEnd`. A syntax error after some messages yields `BadCommand` instead of
`AppendEnd`: the session must then discard every message of the command (MULTIAPPEND is atomic).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from mailcove.proto.imap.parser import Parser

__all__ = ["AppendData", "AppendEnd", "AppendStart", "parse_message_prefix"]


@dataclass(frozen=True, slots=True)
class AppendStart:
    """One message of an APPEND. ``index`` counts messages within the command (0 = first).
    ``binary`` is True for a literal8 (``~{n}``: the message may contain NUL). ``synchronizing``
    True means a `NeedContinuation` follows: send ``+`` (or `reject_literal()` and answer)."""

    name: ClassVar[str] = "APPEND"
    tag: str
    mailbox: str
    flags: tuple[str, ...]
    date: datetime | None
    size: int
    index: int = 0
    binary: bool = False
    synchronizing: bool = False


@dataclass(frozen=True, slots=True)
class AppendData:
    """A chunk of the current message (never more than what one `receive_data` brought)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class AppendEnd:
    """The APPEND command is complete (its final CRLF arrived): commit every message."""

    tag: str
    count: int


def parse_message_prefix(p: Parser) -> tuple[tuple[str, ...], datetime | None]:
    """``[SP flag-list] [SP date-time] SP`` before a message literal (the cursor is on the SP)."""
    p.sp()
    flags: tuple[str, ...] = ()
    date = None
    if p.peek() == 0x28:
        flags = p.flag_list()
        p.sp()
    if p.peek() == 0x22:
        date = p.datetime()
        p.sp()
    return flags, date
