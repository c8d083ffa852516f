"""Local injection: what DELIVER (`mailcove deliver`, an LDA) and SUBMIT (`mailcove sendmail`)
do, whichever way they arrive. The wire protocol, its server and its client are net/control.py;
the server gives each request to `LocalInjection`, and `run_locally` gives it the same request
in this process when no server runs (a user who can open the data dir: root, the server's user).

    reply = ControlClient(path).submit(message, sender, recipients)              # a server runs
    reply = run_locally(settings, Request.submit(len(m), sender, rcpts), m)      # none does

- DELIVER stores the bytes as given for each store account (no trace: an LDA's caller, the MTA
  that ran it, wrote its own), one commit for all.
- SUBMIT resolves the recipients like RCPT TO (aliases, plus-addresses; an unknown local user is
  refused before anything is read), stores the local copies and one queue entry in one commit,
  and serves a Received field naming the caller in front of the message (delivery.Trace): from
  a socket the kernel's word for who it is, in process this process's user. A sender that is not
  the caller's own, from a caller not in [smtp] trusted_users, is accepted with Sendmail's
  X-Authentication-Warning field after our Received."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from mailcove.core.errors import MailError
from mailcove.delivery import DeliveryPlan, Trace, qualify, resolve
from mailcove.directory.api import Alias, Invalid, Local
from mailcove.net.control import BytesBody, Handler, LocalReply, MessageBody, Peer, Request
from mailcove.proto.smtp.params import PathError, check_mailbox
from mailcove.store.api import DeliveryTarget

if TYPE_CHECKING:
    from mailcove.config.settings import Settings
    from mailcove.directory.api import Directory
    from mailcove.store.api import MailStore

log = logging.getLogger("mailcove.local")

# (local user, recipients) -> may this submission go out now? (counted when it may)
SendingLimit = Callable[[str, int], bool]


class LocalInjection:
    """The handlers of DELIVER and SUBMIT. `limit` and `queued` come from a running server (its
    SMTP service's per-user hourly limits and its queue's wake-up); in process there are none."""

    def __init__(
        self,
        settings: Settings,
        store: MailStore,
        directory: Directory | None,
        *,
        limit: SendingLimit | None = None,
        queued: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.directory = directory
        self.hostname = settings.hostname
        self._limit = limit
        self._queued = queued

    def handlers(self, *verbs: str) -> dict[str, Handler]:
        """The handlers a socket serves: the control socket both, the submit socket SUBMIT."""
        table: dict[str, Handler] = {"DELIVER": self.deliver, "SUBMIT": self.submit}
        return {v: table[v] for v in verbs}

    async def handle(self, request: Request, peer: Peer, body: MessageBody) -> LocalReply:
        return await (self.deliver if request.verb == "DELIVER" else self.submit)(request, peer, body)

    async def deliver(self, request: Request, peer: Peer, body: MessageBody) -> LocalReply:
        spool = self.store.new_spool()
        try:
            await body.read_into(spool)
            try:
                results = await self.store.deliver(spool, [DeliveryTarget(r) for r in request.recipients])
            except MailError as exc:
                log.info("delivery to %s refused: %s %s %s", ",".join(request.recipients), exc.code, exc.enhanced,
                         exc.text)
                return LocalReply.error(exc.code, exc.enhanced, exc.text)
        finally:
            # The store adopts (renames) a spooled file it committed; whatever is left is ours.
            spool.discard()
        tokens = " ".join(f"{r.user}:{r.mailbox_id}:{r.uid}" for r in results)
        log.info("delivered %d bytes to %s", body.size, tokens)
        return LocalReply.success(tokens)

    async def submit(self, request: Request, peer: Peer, body: MessageBody) -> LocalReply:
        directory = self.directory
        assert directory is not None, "SUBMIT needs the directory"
        user, host = peer.user, self.hostname
        sender = f"{user}@{host}" if request.sender is None else request.sender
        if sender and "@" not in sender:
            sender = await qualify(directory, sender, host)  # `sendmail -f cron`
        try:
            if sender:
                check_mailbox(sender)
        except PathError:
            return LocalReply.error(553, "5.1.7", f"bad sender address {sender[:80]!r}")
        warning = ""
        if request.sender is not None and not await self._may_set_sender(peer, sender):
            # Sendmail's authwarnings: accepted, but a reader can tell who really sent it.
            warning = f"X-Authentication-Warning: {host}: {user} set sender to {sender or '<>'} using -f\r\n"
            log.info("local user %s (uid %d) set sender to <%s> using -f", user, peer.uid, sender)
        plan = DeliveryPlan()
        for r in request.recipients:
            res = await resolve(directory, await qualify(directory, r, host))
            if isinstance(res, Invalid):
                return LocalReply.error(550, "5.1.1", f"<{r}>: {res.reason}")
            plan.add(res)
        # The check and the count in one step (no await between): parallel submissions cannot all
        # pass before any is counted. A request counts once accepted here, even if storing fails.
        if self._limit is not None and not self._limit(user, plan.count):
            log.info("local submission by %s refused: over [smtp] send_messages_per_hour or "
                     "send_recipients_per_hour", user)
            return LocalReply.error(451, "4.7.1", f"sending limit exceeded for local user {user} (messages or "
                                    "recipients per hour), try again later")
        trace = Trace((self._received(peer) + warning).encode("utf-8", "replace"))
        spool = self.store.new_spool()
        try:
            await body.read_into(spool)
            try:
                result = await plan.submit(self.store, spool, trace, sender=sender, auth_user=f"local:{user}",
                                           client="local")
            except MailError as exc:
                log.info("local submission by %s refused: %s %s %s", user, exc.code, exc.enhanced, exc.text)
                return LocalReply.error(exc.code, exc.enhanced, exc.text)
        finally:
            spool.discard()
        ids = [f"{r.user}:{r.uid}" for r in result.local]
        if result.queue_id is not None:
            ids.append(f"queue:{result.queue_id}")
            if self._queued is not None:
                self._queued()
        log.info("local submission by %s (uid %d) from=<%s> size=%d %s", user, peer.uid, sender, body.size,
                 " ".join(ids))
        return LocalReply.success(" ".join(ids))

    def _received(self, peer: Peer) -> str:
        date = email.utils.formatdate(time.time(), localtime=True)
        if peer.session is None:
            return f"Received: by {self.hostname} (mailcove) with local (user {peer.user});\r\n\t{date}\r\n"
        return (f"Received: from local user {peer.user} (uid {peer.uid})\r\n\tby {self.hostname} (mailcove)"
                f" with local id {peer.session};\r\n\t{date}\r\n")

    async def _may_set_sender(self, peer: Peer, sender: str) -> bool:
        """May this local user send as `sender` without a warning? A trusted user ([smtp]
        trusted_users, and the server's own user) may name anyone; others their own address:
        their name at the hostname or at the domain a bare name is qualified with, or an address
        the directory delivers to their account (system users: the account is the Unix name)."""
        directory = self.directory
        assert directory is not None
        user = peer.user
        if peer.uid == os.geteuid() or user in self.settings.smtp.trusted_users:
            return True
        if not sender:
            return False  # the null sender is a bounce's: the mail system's, not a user's
        qualified = await qualify(directory, user, self.hostname)
        mine = {user.lower(), f"{user}@{self.hostname}".lower(), qualified.lower()}
        if sender.lower() in mine:
            return True
        res = await resolve(directory, sender)
        targets = res.targets if isinstance(res, Alias) else (res,)
        return any(isinstance(t, Local) and t.user.lower() in mine for t in targets)


def run_locally(settings: Settings, request: Request, message: bytes) -> LocalReply:
    """The request in this process, straight into the store (needs the data dir): what a server
    would have done with it, for when none runs."""
    return asyncio.run(_run_locally(settings, request, message))


async def _run_locally(settings: Settings, request: Request, message: bytes) -> LocalReply:
    from mailcove.directory import open_directory
    from mailcove.store.factory import open_store

    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = open_store(settings, watch_changes=False)
    await store.start()
    directory = None
    try:
        if request.verb == "SUBMIT":
            # The store goes to the directory too: system users' accounts are made on first delivery.
            directory = open_directory(settings, store=store)
            await directory.start()
        return await LocalInjection(settings, store, directory).handle(request, Peer.me(), BytesBody(message))
    finally:
        if directory is not None:
            await directory.close()
        await store.close()
