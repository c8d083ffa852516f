"""NOOP (RFC 9051 6.1.2): nothing, but pending mailbox changes are announced after it."""

from __future__ import annotations

from mailcove.imap.session import Session
from mailcove.proto.imap.commands import Noop


async def run(s: Session, cmd: Noop) -> str:
    # What another worker process committed is announced now, not at its change poller's next
    # look (up to 100 ms later): the dispatcher settles the bus after every command.
    await s.store.catch_up()
    return "NOOP completed"
