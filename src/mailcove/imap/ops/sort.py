"""SORT and UID SORT (RFC 5256), SORT=DISPLAY (RFC 5957), ESORT (RFC 5267)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from mailcove.core import cooperative
from mailcove.imap.ops.search import evaluate, respond
from mailcove.imap.search import Msg, uses_modseq
from mailcove.imap.session import Session
from mailcove.imap.sort import distinct_keys, key_values, order_steps
from mailcove.proto.imap.commands import Sort
from mailcove.store.api import MessageMeta

META_BATCH = 500
T = TypeVar("T")


async def fields_of(s: Session, found: list[Msg], make: Callable[[MessageMeta], T]) -> list[tuple[Msg, T]]:
    """`make(meta)` for each message of `found` the store still has, in `found`'s order. The
    metadata is read in batches and each MessageInfo dropped once `make` has taken what it needs,
    so SORT and THREAD over 100,000 messages never hold 100,000 MessageInfo objects at once."""
    view = s.require_view()
    got: dict[int, T] = {}
    need: list[int] = []
    for m in found:
        if m.meta is not None:
            got[m.uid] = make(m.meta)
            await cooperative.pause()
        else:
            need.append(m.uid)
    need.sort()
    for i in range(0, len(need), META_BATCH):
        for meta in await s.store.fetch_meta(view.cache.mailbox_id, need[i : i + META_BATCH]):
            got[meta.uid] = make(meta)
            await cooperative.pause()
    return [(m, got[m.uid]) for m in found if m.uid in got]


async def run(s: Session, cmd: Sort) -> str:
    modseq_used = uses_modseq(cmd.criteria)
    if modseq_used:
        s.use_condstore()
    found = await evaluate(s, cmd.criteria)
    keys = distinct_keys(cmd.sort)
    keyed = await fields_of(s, found, lambda meta: key_values(meta, keys))
    by_seq = {m.seq: m for m, _ in keyed}
    order = await cooperative.drive(order_steps([(m.seq, values) for m, values in keyed], keys))
    ordered = [by_seq[q] for q in order]
    respond(s, cmd.tag, cmd.uid, ordered, cmd.return_opts, modseq_used, name="SORT")
    return "SORT completed"
