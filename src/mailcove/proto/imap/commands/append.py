"""APPEND (RFC 9051 §6.3.12) with MULTIAPPEND (RFC 3502), LITERAL+, BINARY literal8 (RFC 3516) and the
UTF8 data item of UTF8=ACCEPT (RFC 6855 §4: ``UTF8 (~{n}...)``).

APPEND is not delivered as one `Command`: the message is streamed. The receiver yields, per message,
`AppendStart` (mailbox, flags, date, size), then `AppendData` chunks adding up to ``size`` bytes; after
the last message `AppendEnd`. A syntax error after some messages yields `BadCommand` instead of
`AppendEnd`: the session must then discard every message of the command (MULTIAPPEND is atomic).

RFC 6855 §4 adds ``append-data =/ "UTF8" SP "(" literal8 ")"``: a message may come wrapped as
``UTF8 (~{n}`` CRLF *n octets* ``)``, and in a MULTIAPPEND each message may use that form or not. The
receiver takes it whether or not the client sent ENABLE UTF8=ACCEPT. RFC 6855 ties the syntax to the
advertised capability (mailcove always advertises UTF8=ACCEPT), and the one rule §4 ties to ENABLE is
about content: without ENABLE the server must answer NO to a message with 8-bit header fields,
whichever form carried it. Thunderbird 153 sends the UTF8 form for every message once it has seen
the capability. RFC 9755 (2025, which obsoletes RFC 6855) dropped the item, but the clients in the
field still send it, so it stays accepted. Dovecot 2.3.19 does not advertise UTF8=ACCEPT, and it
answers the form with BAD ("Missing ')'"), so it is no model here. The literal inside must be a
literal8 (``~{n}`` / ``~{n+}``) as the ABNF says; a plain ``{n}`` there, or a missing ")" after the
message, is BAD.
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
    utf8: bool = False  # sent in the RFC 6855 form ``UTF8 (~{n}...)`` (the receiver eats the ")")


@dataclass(frozen=True, slots=True)
class AppendData:
    """A chunk of the current message (never more than what one `receive_data` brought)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class AppendEnd:
    """The APPEND command is complete (its final CRLF arrived): commit every message."""

    tag: str
    count: int


def parse_message_prefix(p: Parser) -> tuple[tuple[str, ...], datetime | None, bool]:
    """``[SP flag-list] [SP date-time] SP ["UTF8" SP "("]`` before a message literal (the cursor is
    on the first SP). The bool is True for the RFC 6855 form, whose ")" follows the literal."""
    p.sp()
    flags: tuple[str, ...] = ()
    date = None
    if p.peek() == 0x28:
        flags = p.flag_list()
        p.sp()
    if p.peek() == 0x22:
        date = p.datetime()
        p.sp()
    utf8 = p.accept(b"UTF8")
    if utf8:
        p.sp()
        p.expect(b"(")
    return flags, date, utf8
