"""CHECK (RFC 3501 6.4.1; gone from rev2 but harmless): every write is already durable."""

from __future__ import annotations

from mailcove.imap.session import Session
from mailcove.proto.imap.commands import Check


async def run(s: Session, cmd: Check) -> str:
    return "CHECK completed"
