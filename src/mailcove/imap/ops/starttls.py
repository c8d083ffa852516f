"""STARTTLS (RFC 9051 6.2.1). Bytes pipelined after the command are dropped (both the
receiver's and, in net, the stream's): CVE-2011-0411 class. Afterwards the client must ask for
CAPABILITY again (we send none unsolicited, as the RFC says)."""

from __future__ import annotations

from mailcove.imap.session import Reply, Session
from mailcove.proto.imap.commands import StartTLS


async def run(s: Session, cmd: StartTLS) -> str:
    if s.is_tls:
        raise Reply("BAD", "TLS is already active")
    if not s.conn.tls_available:
        raise Reply("NO", "TLS is not available")
    await s.io.flush()
    s.receiver.drop_buffer()
    await s.conn.start_tls(f"{cmd.tag} OK Begin TLS negotiation now\r\n".encode())
    s.tag_done = cmd.tag
    return ""
