"""Resolve recipients, then hand one message to the store in one commit.

Shared by the SMTP session and local injection (delivery/local.py: `mailcove sendmail` and
`mailcove deliver`): the same address always goes to the same places.

    plan = DeliveryPlan()
    plan.add(await resolve(directory, "a+tag@hamap.local"))                # at RCPT time
    ...
    result = await plan.submit(store, spool, Trace(received), sender=...)  # after DATA

Aliases, plus-addresses and catch-alls are expanded by `directory.resolve()`; here each final
target is added once (a local account by its key, a remote address case-insensitively).
`abuse@<local domain>` without an entry of its own goes where `postmaster@` goes (RFC 2142).

The message is stored as received. What the server adds is a `Trace` value (Received,
Authentication-Results, and a filter's rewritten header if any); `DeliveryPlan.submit` puts
Return-Path in front for the local copies (RFC 5321 4.4: only the final delivery adds it) and
gives the store both prefixes (store.api.MessagePrefix)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailcove.directory.api import Alias, Invalid, Local, Remote, Resolution
from mailcove.store.api import DeliveryTarget, MessagePrefix, OutboundEnvelope, OutboundRecipient, SubmitResult

if TYPE_CHECKING:
    from mailcove.directory.api import Directory
    from mailcove.message.headers import RewrittenHeader
    from mailcove.store.api import MailStore
    from mailcove.store.spool import Spool


async def resolve(directory: Directory, address: str) -> Resolution:
    """Where mail to `address` goes: the directory's answer, then the recipients' own forwarding
    (~/.forward of system users), which applies to delivery only: `directory.resolve` alone
    still says who owns an address (SMTP's MAIL FROM check)."""
    res = await _resolve(directory, address)
    if not isinstance(res, Invalid):
        res = await directory.expand_forwards(res, address)
    return res


async def _resolve(directory: Directory, address: str) -> Resolution:
    res = await directory.resolve(address)
    local, at, domain = address.rpartition("@")
    if at and local.lower() == "abuse" and await directory.is_local_domain(domain):
        # abuse@ goes where postmaster@ goes unless the domain defines it: an alias or user of
        # its own, not the catch-all (the same precedence the directory gives postmaster@). The
        # directory does not say whether a catch-all answered, so compare with a name that
        # cannot exist.
        if not isinstance(res, Invalid):
            probe = await directory.resolve(f"mailcove-no-such-user-{secrets.token_hex(8)}@{domain}")
            if probe != res:
                return res
        pm = await directory.resolve(f"postmaster@{domain}")
        if not isinstance(pm, Invalid):
            return pm
    return res


async def qualify(directory: Directory, name: str, hostname: str) -> str:
    """A bare recipient name from local submission (`sendmail root`): at the server's hostname
    if that is a local domain, else at its parent domain if that is (mx1.hamap.local ->
    hamap.local), as Sendmail's $=w and Postfix's myorigin make `root` a local address."""
    if "@" in name or name.lower() == "postmaster":
        return name
    candidates = [hostname]
    if "." in hostname:
        candidates.append(hostname.split(".", 1)[1])
    for dom in candidates:
        if await directory.is_local_domain(dom):
            return f"{name}@{dom}"
    return f"{name}@{hostname}"


@dataclass(frozen=True, slots=True)
class Trace:
    """The header fields this server puts above a message it accepts, as a value, never written
    into the message: `fields` are whole fields in the order they are served (Authentication-
    Results, Received, X-Authentication-Warning), `header` a filter's rewrite of the message's own
    header block (None: served as received)."""

    fields: bytes = b""
    header: RewrittenHeader | None = None

    def prefix(self, sender: str | None) -> MessagePrefix:
        """What the store serves in front of the body: for the local copies Return-Path first
        (unless `sender` is None: no Return-Path), for the queue entry the trace alone."""
        queued = self.fields + self.header.data if self.header is not None else self.fields
        local = queued if sender is None else f"Return-Path: <{sender}>\r\n".encode("utf-8", "replace") + queued
        return MessagePrefix(local, queued, self.header.replaces if self.header is not None else 0)


@dataclass
class DeliveryPlan:
    """The recipients of one transaction, resolved and de-duplicated."""

    local: dict[str, DeliveryTarget] = field(default_factory=dict)
    remote: dict[str, OutboundRecipient] = field(default_factory=dict)

    def add(self, res: Local | Alias | Remote, *, notify: tuple[str, ...] = (), orcpt: str | None = None) -> None:
        targets = res.targets if isinstance(res, Alias) else (res,)
        for t in targets:
            if isinstance(t, Local):
                if t.user not in self.local:
                    self.local[t.user] = DeliveryTarget(t.user, t.mailbox or "INBOX")
            else:
                key = t.address.lower()
                if key not in self.remote:
                    self.remote[key] = OutboundRecipient(t.address, orcpt, notify)

    def local_users(self, res: Local | Alias | Remote) -> list[str]:
        targets = res.targets if isinstance(res, Alias) else (res,)
        return [t.user for t in targets if isinstance(t, Local)]

    def __bool__(self) -> bool:
        return bool(self.local or self.remote)

    @property
    def count(self) -> int:
        return len(self.local) + len(self.remote)

    async def submit(
        self,
        store: MailStore,
        source: bytes | Spool,
        trace: Trace,
        *,
        sender: str,
        envid: str | None = None,
        ret: str | None = None,
        body: str | None = None,
        smtputf8: bool = False,
        auth_user: str | None = None,
        client: str | None = None,
    ) -> SubmitResult:
        """One commit: every local copy and, for remote recipients, one queue entry, the message
        stored as received with `trace` (and Return-Path for the local copies) served in front.
        Raises the store's MailError (QuotaExceeded, DiskFull, ...) with nothing stored."""
        outbound = None
        if self.remote:
            outbound = OutboundEnvelope(
                sender, tuple(self.remote.values()), envid, ret, body, smtputf8, auth_user, client
            )
        prefix = trace.prefix(sender if self.local else None)
        return await store.submit(source, list(self.local.values()), outbound, prefix=prefix)
