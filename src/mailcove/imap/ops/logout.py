"""LOGOUT (RFC 9051 6.1.3): BYE, the tagged OK, then the connection closes."""

from __future__ import annotations

from mailcove.imap.session import LOGOUT, CloseConnection, Session
from mailcove.proto.imap.commands import Logout


async def run(s: Session, cmd: Logout) -> str:
    s.untagged_status("BYE", "Logging out")
    s.tagged(cmd.tag, "OK", "LOGOUT completed")
    s.state = LOGOUT
    s.close_view()
    raise CloseConnection()
