"""NOOP (RFC 9051 6.1.2): nothing, but pending mailbox changes are announced after it."""

from __future__ import annotations

from mailcove.imap.session import Session
from mailcove.proto.imap.commands import Noop


async def run(s: Session, cmd: Noop) -> str:
    return "NOOP completed"
