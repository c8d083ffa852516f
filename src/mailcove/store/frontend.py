"""The part of MailStore.deliver/submit/append every backend shares: argument checks and the
shape of the targets. Each backend supplies `_add`, which stores one message for a list of
(user, mailbox, flags) targets and, for submit, one outbound queue entry, in one transaction."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence

from mailcove.message import to_crlf
from mailcove.store.api import AppendResult, DeliveryTarget, OutboundEnvelope, SubmitResult
from mailcove.store.names import normalize_name
from mailcove.store.spool import Spool

Target = tuple[str, str, frozenset[str]]
Outbound = tuple[str, list[tuple[str, str | None, str]]]


def envelope_to_json(env: OutboundEnvelope) -> str:
    """The queue entry's envelope without its recipients (they are rows of their own)."""
    d = dataclasses.asdict(env)
    d.pop("recipients")
    return json.dumps(d, separators=(",", ":"))


class AddingFrontend:
    async def _add(
        self,
        source: bytes | Spool,
        targets: list[Target],
        internaldate: float | None,
        *,
        fallback_to_inbox: bool,
        outbound: Outbound | None = None,
    ) -> tuple[list[AppendResult], int | None]:
        raise NotImplementedError

    async def deliver(
        self, source: bytes | Spool, targets: Sequence[DeliveryTarget], *, internaldate: float | None = None
    ) -> list[AppendResult]:
        if not targets:
            return []
        return (await self.submit(source, targets, None, internaldate=internaldate)).local

    async def submit(
        self,
        source: bytes | Spool,
        targets: Sequence[DeliveryTarget],
        outbound: OutboundEnvelope | None,
        *,
        internaldate: float | None = None,
    ) -> SubmitResult:
        if outbound is not None and not outbound.recipients:
            outbound = None
        if not targets and outbound is None:
            raise ValueError("submit needs a local target or a remote recipient")
        tlist = [(t.user, normalize_name(t.mailbox), frozenset(t.flags)) for t in targets]
        out = None
        if outbound is not None:
            out = (
                envelope_to_json(outbound),
                [(r.address, r.orcpt, ",".join(r.notify)) for r in outbound.recipients],
            )
        results, queue_id = await self._add(source, tlist, internaldate, fallback_to_inbox=True, outbound=out)
        return SubmitResult(results, queue_id)

    async def append(
        self,
        user: str,
        mailbox: str,
        source: bytes | Spool,
        *,
        flags: Iterable[str] = (),
        internaldate: float | None = None,
    ) -> AppendResult:
        if isinstance(source, bytes | bytearray | memoryview):
            source = to_crlf(bytes(source))
        (result,), _ = await self._add(
            source, [(user, normalize_name(mailbox), frozenset(flags))], internaldate, fallback_to_inbox=False
        )
        return result
