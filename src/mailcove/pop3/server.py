"""The POP3 listeners' entry point for `mailcove serve`: `pop3` (port 110, STLS) and `pop3s`
(port 995, implicit TLS; the listener completes the handshake before the handler runs).
`Pop3Server(Pop3Deps(...))` is built once per process; `handler(listener)` serves each listener."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailcove.pop3.session import Pop3Session, Pop3Shared

if TYPE_CHECKING:
    from mailcove.config import Settings
    from mailcove.core.clock import Clock
    from mailcove.directory.api import Directory
    from mailcove.net.limits import ConnectionCounter
    from mailcove.net.listeners import Connection, Handler
    from mailcove.store.api import MailStore


@dataclass(frozen=True)
class Pop3Deps:
    """What the POP3 listeners are built from (app.py fills it in)."""

    settings: Settings
    store: MailStore
    directory: Directory
    connections: ConnectionCounter  # one counter for both listeners
    clock: Clock


class Pop3Server:
    def __init__(self, deps: Pop3Deps) -> None:
        self.deps = deps
        # Both listeners share one lock table and cache: a user logged in over pop3s must lock
        # out a second login over pop3 as well.
        self.shared = Pop3Shared(deps.settings.pop3, deps.store, deps.clock)

    def handler(self, listener: str) -> Handler:
        deps, shared, connections = self.deps, self.shared, self.deps.connections

        async def handler(conn: Connection) -> None:
            ip = conn.peer_ip
            if not connections.try_add(ip):
                conn.log.info("too many connections: %s", connections.describe(ip))
                await Pop3Session(deps, shared, conn).refuse("Too many connections, try again later.")
                return
            try:
                await Pop3Session(deps, shared, conn).run()
            finally:
                connections.remove(ip)

        return handler

    async def aclose(self) -> None:
        pass
