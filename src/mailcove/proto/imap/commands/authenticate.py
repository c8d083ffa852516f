"""AUTHENTICATE (RFC 9051 §6.2.2) with SASL-IR (RFC 4959).

Further client responses arrive as `AuthLine` events after the session calls
`ImapReceiver.start_auth()`."""

from __future__ import annotations

import base64
import binascii
from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import ParseError, Parser

__all__ = ["Authenticate", "parse"]


@command
class Authenticate(Command):
    """``initial`` is the decoded SASL-IR initial response: None when absent, b"" for ``=``."""

    name: ClassVar[str] = "AUTHENTICATE"
    mechanism: str
    initial: bytes | None = None


def parse(p: Parser, tag: str, uid: bool) -> Authenticate:
    p.sp()
    mech = p.upper_atom()
    initial = None
    if p.maybe_sp():
        start = p.pos
        while not p.at_end() and p.peek() != 0x20:
            p.pos += 1
        raw = p.buf[start:p.pos]
        if raw == b"=":
            initial = b""
        else:
            try:
                initial = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise ParseError("Invalid base64 in the initial response") from None
            if not raw:
                raise ParseError("Empty initial response (use =)")
    p.end()
    return Authenticate(tag=tag, mechanism=mech, initial=initial)
