"""ENABLE (RFC 5161 / RFC 9051 6.3.1): IMAP4rev2, CONDSTORE, QRESYNC (implies CONDSTORE),
UTF8=ACCEPT. Unknown capabilities are ignored, as the RFC says; only newly enabled ones are listed."""

from __future__ import annotations

from mailcove.imap.session import ENABLEABLE, Session
from mailcove.proto.imap.commands import Enable


async def run(s: Session, cmd: Enable) -> str:
    newly: list[str] = []
    for cap in cmd.capabilities:
        up = cap.upper()
        if up in ENABLEABLE and up not in s.enabled:
            s.enabled.add(up)
            newly.append("IMAP4rev2" if up == "IMAP4REV2" else up)
            if up == "QRESYNC" and "CONDSTORE" not in s.enabled:
                s.enabled.add("CONDSTORE")
    s.update_encoding()
    s.write(s.enc.enabled(newly))
    return "ENABLE completed"
