"""SORT and UID SORT (RFC 5256), SORT=DISPLAY (RFC 5957), ESORT (RFC 5267)."""

from __future__ import annotations

from mailcove.imap.ops.search import evaluate, respond
from mailcove.imap.search import Msg, uses_modseq
from mailcove.imap.session import Session
from mailcove.imap.sort import sort_messages
from mailcove.proto.imap.commands import Sort

META_BATCH = 500


async def metas_for(s: Session, found: list[Msg]) -> None:
    view = s.require_view()
    need = [m for m in found if m.meta is None]
    by_uid = {m.uid: m for m in need}
    uids = sorted(by_uid)
    for i in range(0, len(uids), META_BATCH):
        for meta in await s.store.fetch_meta(view.cache.mailbox_id, uids[i : i + META_BATCH]):
            by_uid[meta.uid].meta = meta


async def run(s: Session, cmd: Sort) -> str:
    modseq_used = uses_modseq(cmd.criteria)
    if modseq_used:
        s.use_condstore()
    found = await evaluate(s, cmd.criteria)
    await metas_for(s, found)
    found = [m for m in found if m.meta is not None]
    by_seq = {m.seq: m for m in found}
    order = sort_messages([(m.seq, m.meta) for m in found], cmd.sort)  # type: ignore[misc]
    ordered = [by_seq[q] for q in order]
    respond(s, cmd.tag, cmd.uid, ordered, cmd.return_opts, modseq_used, name="SORT")
    return "SORT completed"
