"""The `imap` (STARTTLS) and `imaps` (implicit TLS) listeners: `make_handler` is what
`app.PROTOCOLS` names. One `ImapServer` per listener shares one `CacheRegistry` per process (the
open mailboxes' UID/flags maps), so a mailbox selected over both listeners is held once."""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING

from mailcove.imap.dispatch import process
from mailcove.imap.selected import CacheRegistry
from mailcove.imap.session import ImapContext, ImapLimits, Session

if TYPE_CHECKING:
    from mailcove.app import ServerContext
    from mailcove.net.listeners import Connection

# One registry per store per process: both listeners' handlers share it.
_registries: weakref.WeakKeyDictionary[object, CacheRegistry] = weakref.WeakKeyDictionary()


def _registry(store: object) -> CacheRegistry:
    reg = _registries.get(store)
    if reg is None:
        reg = CacheRegistry(store)  # type: ignore[arg-type]
        _registries[store] = reg
    return reg


class ImapServer:
    def __init__(self, ctx: ServerContext, listener: str) -> None:
        settings = ctx.settings
        imap = getattr(settings, "imap", None)
        limits = ImapLimits()
        if imap is not None:
            limits = ImapLimits(
                appendlimit=imap.appendlimit,
                max_line=imap.max_line,
                idle_timeout=imap.idle_timeout,
                min_data_rate=imap.min_data_rate,
                login_timeout=imap.login_timeout,
                max_bads=imap.max_bad_commands,
                max_mailboxes=imap.max_mailboxes,
            )
        self.listener = listener
        self.connections = ctx.connections.imap  # shared with the other IMAP listener
        self.ctx = ImapContext(
            settings=settings,
            store=ctx.store,
            directory=ctx.directory,
            tls=ctx.tls if settings.tls.enabled else None,
            registry=_registry(ctx.store),
            process=process,
            limits=limits,
            implicit_tls=listener == "imaps",
            clock=ctx.clock,
        )

    async def __call__(self, conn: Connection) -> None:
        ip = conn.peer_ip
        if not self.connections.try_add(ip):
            conn.log.info("too many connections: %s", self.connections.describe(ip))
            await Session(self.ctx, conn).refuse("Too many connections, try again later")
            return
        try:
            await Session(self.ctx, conn).run()
        finally:
            self.connections.remove(ip)

    async def aclose(self) -> None:
        await self.ctx.registry.aclose()
        await asyncio.sleep(0)


def make_handler(ctx: ServerContext, listener: str) -> ImapServer:
    return ImapServer(ctx, listener)
