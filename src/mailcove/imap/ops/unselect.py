"""UNSELECT (RFC 3691 / RFC 9051 6.4.2): leave the mailbox without expunging."""

from __future__ import annotations

from mailcove.imap.session import Session
from mailcove.proto.imap.commands import Unselect


async def run(s: Session, cmd: Unselect) -> str:
    s.close_view()
    return "UNSELECT completed"
