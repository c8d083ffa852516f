"""AUTHENTICATE PLAIN (RFC 9051 6.2.2, RFC 4616) with SASL-IR (RFC 4959)."""

from __future__ import annotations

from mailcove.imap.ops.login import login
from mailcove.imap.session import Reply, Session
from mailcove.logs import auth_failed
from mailcove.proto.imap import AuthLine
from mailcove.proto.imap.commands import Authenticate


def _plain(s: Session, data: bytes) -> tuple[str, str]:
    parts = data.split(b"\x00")
    if len(parts) != 3:
        raise Reply("BAD", "Malformed PLAIN response")
    authz, authc, password = (p.decode("utf-8", "replace") for p in parts)
    if authz and authz != authc:
        auth_failed(s.log, s.conn.listener, s.conn.peer_ip, authc, "authzid-differs")
        raise Reply("NO", "Proxy authentication is not supported", "AUTHORIZATIONFAILED")
    return authc, password


async def run(s: Session, cmd: Authenticate) -> tuple[str, str] | str:
    if cmd.mechanism != "PLAIN":
        raise Reply("NO", f"Unsupported mechanism {cmd.mechanism}", "CANNOT")
    if not s.login_allowed:
        raise Reply("NO", "Authentication is disabled before TLS; use STARTTLS", "PRIVACYREQUIRED")
    if cmd.initial is None:
        s.continuation(b"")
        s.receiver.start_auth()
        s.auth = cmd.tag
        s.tag_done = cmd.tag
        return ""
    user, password = _plain(s, cmd.initial)
    return await login(s, user, password), "Logged in"


async def on_line(s: Session, ev: AuthLine) -> None:
    import base64
    import binascii

    tag = s.auth
    s.auth = None
    if tag is None:
        s.untagged_status("BAD", "Unexpected SASL response")
        return
    if ev.cancelled:
        s.tagged(tag, "BAD", "Authentication cancelled")
        return
    try:
        data = base64.b64decode(ev.line, validate=True)
        user, password = _plain(s, data)
        caps = await login(s, user, password)
    except (binascii.Error, ValueError):
        s.tagged(tag, "BAD", "Invalid base64")
        return
    except Reply as r:
        s.tagged(tag, r.status, r.text, r.code)
        return
    s.tagged(tag, "OK", "Logged in", caps)
