"""The `imap` (STARTTLS) and `imaps` (implicit TLS) listeners: `ImapServer(ImapDeps(...))` is
built once per process by app.py, and `handler(listener)` serves each listener. Both share one
`CacheRegistry` (the open mailboxes' UID/flags maps), so a mailbox selected over both listeners
is held once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailcove.imap.dispatch import process
from mailcove.imap.recent import RecentFloors
from mailcove.imap.selected import CacheRegistry
from mailcove.imap.session import ImapContext, ImapLimits, Session

if TYPE_CHECKING:
    from mailcove.config import Settings
    from mailcove.core.clock import Clock
    from mailcove.directory.api import Directory
    from mailcove.net.limits import ConnectionCounter
    from mailcove.net.listeners import Connection
    from mailcove.net.tls import TlsHolder
    from mailcove.store.api import MailStore


@dataclass(frozen=True)
class ImapDeps:
    """What the IMAP listeners are built from (app.py fills it in)."""

    settings: Settings
    store: MailStore
    directory: Directory
    tls: TlsHolder | None  # None when [tls] enabled = false
    connections: ConnectionCounter  # one counter for both listeners
    clock: Clock


class ImapServer:
    def __init__(self, deps: ImapDeps) -> None:
        self.deps = deps
        self.registry = CacheRegistry(deps.store, RecentFloors(deps.settings.data_dir))
        imap = deps.settings.imap
        self.limits = ImapLimits(
            appendlimit=imap.appendlimit,
            max_line=imap.max_line,
            idle_timeout=imap.idle_timeout,
            min_data_rate=imap.min_data_rate,
            login_timeout=imap.login_timeout,
            max_bads=imap.max_bad_commands,
            max_mailboxes=imap.max_mailboxes,
        )

    def handler(self, listener: str) -> ImapHandler:
        d = self.deps
        ctx = ImapContext(
            settings=d.settings,
            store=d.store,
            directory=d.directory,
            tls=d.tls,
            registry=self.registry,
            process=process,
            limits=self.limits,
            implicit_tls=listener == "imaps",
            clock=d.clock,
        )
        return ImapHandler(ctx, d.connections)

    async def aclose(self) -> None:
        await self.registry.aclose()
        self.registry.recent.close()
        await asyncio.sleep(0)


class ImapHandler:
    """One listener's handler: the connection cap, then a Session per connection."""

    def __init__(self, ctx: ImapContext, connections: ConnectionCounter) -> None:
        self.ctx = ctx
        self.connections = connections

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
