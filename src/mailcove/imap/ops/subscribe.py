"""SUBSCRIBE and UNSUBSCRIBE (RFC 9051 6.3.7/6.3.8)."""

from __future__ import annotations

from mailcove.imap.session import Session
from mailcove.proto.imap.commands import Subscribe, Unsubscribe


async def run(s: Session, cmd: Subscribe | Unsubscribe) -> str:
    await s.store.set_subscribed(s.user, cmd.mailbox, cmd.name == "SUBSCRIBE")
    return f"{cmd.name} completed"
