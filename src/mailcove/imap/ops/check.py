"""CHECK (RFC 3501 6.4.1; gone from rev2 but harmless): every write is already durable."""

from __future__ import annotations

from mailcove.imap.session import Session
from mailcove.proto.imap.commands import Check


async def run(s: Session, cmd: Check) -> str:
    # What another worker process committed is announced now, not at its change poller's next
    # look (up to 100 ms later): the dispatcher settles the bus after every command.
    await s.store.catch_up()
    return "CHECK completed"
