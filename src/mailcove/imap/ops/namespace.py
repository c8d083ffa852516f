"""NAMESPACE (RFC 2342 / RFC 9051 6.3.10): one personal namespace, "/" separated; no shared or
other users' namespaces (one user never sees another's mailboxes)."""

from __future__ import annotations

from mailcove.imap.session import Session
from mailcove.proto.imap.commands import Namespace


async def run(s: Session, cmd: Namespace) -> str:
    s.write(s.enc.namespace([("", "/")]))
    return "NAMESPACE completed"
