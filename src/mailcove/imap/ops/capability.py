"""CAPABILITY (RFC 9051 6.1.1)."""

from __future__ import annotations

from mailcove.imap.session import Session
from mailcove.proto.imap.commands import Capability


async def run(s: Session, cmd: Capability) -> str:
    s.write(s.enc.capability(s.capabilities()))
    return "CAPABILITY completed"
