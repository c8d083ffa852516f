"""The POP3 listeners' entry point for `mailcove serve`: `pop3` (port 110, STLS) and `pop3s`
(port 995, implicit TLS; the listener completes the handshake before the handler runs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailcove.pop3.session import Pop3Session, Pop3Shared

if TYPE_CHECKING:
    from mailcove.app import ServerContext
    from mailcove.net.listeners import Connection, Handler

_SHARED_KEY = "pop3"


def make_handler(ctx: ServerContext, listener: str) -> Handler:
    # Both listeners share one lock table and cache: a user logged in over pop3s must lock out a
    # second login over pop3 as well.
    shared = ctx.services.get(_SHARED_KEY)
    if shared is None:
        shared = ctx.services[_SHARED_KEY] = Pop3Shared(ctx.settings.pop3, ctx.store, ctx.clock)

    connections = ctx.connections.pop3  # one counter for both listeners

    async def handler(conn: Connection) -> None:
        ip = conn.peer_ip
        if not connections.try_add(ip):
            conn.log.info("too many connections: %s", connections.describe(ip))
            await Pop3Session(ctx, shared, conn).refuse("Too many connections, try again later.")
            return
        try:
            await Pop3Session(ctx, shared, conn).run()
        finally:
            connections.remove(ip)

    return handler
