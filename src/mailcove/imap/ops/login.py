"""LOGIN (RFC 9051 6.2.3). Refused before TLS unless `[auth] allow_plaintext` (LOGINDISABLED)."""

from __future__ import annotations

from mailcove.directory import DirectoryBusy
from mailcove.imap.session import Reply, Session
from mailcove.logs import auth_failed
from mailcove.proto.imap.commands import Login

BUSY_WAIT = 10.0  # seconds a login waits for a free password-verification slot


async def login(s: Session, username: str, password: str) -> str:
    """Shared by LOGIN and AUTHENTICATE PLAIN: check, switch state, answer with capabilities."""
    if not s.login_allowed:
        raise Reply("NO", "Plaintext login is disabled before TLS; use STARTTLS", "PRIVACYREQUIRED")
    if len(username) > 320 or len(password) > 1024:
        auth_failed(s.log, s.conn.listener, s.conn.peer_ip, username, "too-long")
        raise Reply("NO", "Invalid credentials", "AUTHENTICATIONFAILED")
    principal = None
    delay = 0.05
    clock = s.ctx.clock
    deadline = clock.monotonic() + BUSY_WAIT
    while True:
        try:
            principal = await s.ctx.directory.authenticate(username, password, client_ip=s.conn.peer_ip)
            break
        except DirectoryBusy:
            # The password-hash pool is full (a burst of logins, e.g. 50 clients starting at
            # once). Clients treat NO as "wrong password" and prompt the user, so wait a little
            # for a slot first, as Dovecot's auth queue would.
            if clock.monotonic() + delay > deadline:
                raise Reply("NO", "Too many logins in progress, try again", "UNAVAILABLE") from None
            await clock.sleep(delay)
            delay = min(delay * 2, 0.5)
    if principal is None:
        auth_failed(s.log, s.conn.listener, s.conn.peer_ip, username, "wrong-credentials")
        raise Reply("NO", "Invalid credentials", "AUTHENTICATIONFAILED")
    try:
        exists = await s.store.account_exists(principal.user)
    except Exception:
        exists = False
    if not exists:
        await s.store.create_account(principal.user)
    s.authenticated(principal)
    s.log.info("login %s", principal.user)
    return "CAPABILITY " + " ".join(s.capabilities())


async def run(s: Session, cmd: Login) -> tuple[str, str]:
    caps = await login(s, cmd.username, cmd.password)
    return caps, "Logged in"
