"""LOGIN (RFC 9051 6.2.3). Refused before TLS unless `[auth] allow_plaintext` (LOGINDISABLED)."""

from __future__ import annotations

from mailcove.directory import DirectoryBusy
from mailcove.imap.session import AUTH, Reply, Session
from mailcove.proto.imap.commands import Login


async def login(s: Session, username: str, password: str) -> str:
    """Shared by LOGIN and AUTHENTICATE PLAIN: check, switch state, answer with capabilities."""
    if not s.login_allowed:
        raise Reply("NO", "Plaintext login is disabled before TLS; use STARTTLS", "PRIVACYREQUIRED")
    if len(username) > 320 or len(password) > 1024:
        raise Reply("NO", "Invalid credentials", "AUTHENTICATIONFAILED")
    try:
        principal = await s.ctx.directory.authenticate(username, password, client_ip=s.conn.peer_ip)
    except DirectoryBusy:
        raise Reply("NO", "Too many logins in progress, try again", "UNAVAILABLE") from None
    if principal is None:
        s.log.info("login failed for %r", username[:64])
        raise Reply("NO", "Invalid credentials", "AUTHENTICATIONFAILED")
    try:
        exists = await s.store.account_exists(principal.user)
    except Exception:
        exists = False
    if not exists:
        await s.store.create_account(principal.user)
    s.principal = principal
    s.state = AUTH
    s.log.info("login %s", principal.user)
    return "CAPABILITY " + " ".join(s.capabilities())


async def run(s: Session, cmd: Login) -> tuple[str, str]:
    caps = await login(s, cmd.username, cmd.password)
    return caps, "Logged in"
