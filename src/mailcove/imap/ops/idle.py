"""IDLE (RFC 2177 / RFC 9051 6.3.13). The session loop waits for DONE and for the selected
mailbox's cache to change (the change bus: this process at once, other processes within the
store's poll interval, 100 ms by default) and announces changes, EXPUNGE included, at once."""

from __future__ import annotations

from mailcove.imap.session import SELECTED, Session
from mailcove.proto.imap.commands import Idle


async def run(s: Session, cmd: Idle) -> str:
    s.continuation("idling")
    s.receiver.start_idle()
    s.idling = cmd.tag
    s.tag_done = cmd.tag
    if s.state == SELECTED:
        await s.announce(allow_expunge=True)
    return ""


async def done(s: Session) -> None:
    tag = s.idling
    s.idling = None
    if tag is None:
        s.untagged_status("BAD", "Unexpected DONE")
        return
    if s.state == SELECTED:
        await s.announce(allow_expunge=True)
    s.tagged(tag, "OK", "IDLE terminated")
