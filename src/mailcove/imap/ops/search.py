"""SEARCH and UID SEARCH (RFC 9051 6.4.4): every key (imap/search.py), CHARSET UTF-8 / US-ASCII,
ESEARCH RETURN (MIN MAX COUNT ALL SAVE) (RFC 4731 / rev2), SEARCHRES (RFC 5182), CONDSTORE
MODSEQ (RFC 7162 3.1.5)."""

from __future__ import annotations

from mailcove.imap.search import Evaluator, Msg, uses_modseq
from mailcove.imap.session import Session
from mailcove.proto.imap.commands import Search
from mailcove.proto.imap.commands.search import SearchKey


async def evaluate(s: Session, criteria: SearchKey) -> list[Msg]:
    view = s.require_view()
    cache = view.cache
    if view.in_step:
        # Positions agree with the cache: no per-message lookup.
        msgs = [Msg(i + 1, uid, fl, ms)
                for i, (uid, fl, ms) in enumerate(zip(view.uids, cache.flags, cache.modseqs, strict=True))]
    else:
        # A message expunged elsewhere but not announced yet keeps its number and its last
        # flags; keys that need its metadata cannot match it any more (the store has no row).
        msgs = [Msg(i + 1, uid, view.flags_of(uid), cache.modseq_of(uid) or 0) for i, uid in enumerate(view.uids)]
    ev = Evaluator(s.store, cache.mailbox_id, count=len(view), max_uid=view.max_uid, saved=s.saved_search,
                   recent=view.recent, light=cache.light)
    return await ev.run(criteria, msgs)


def respond(s: Session, tag: str, uid: bool, found: list[Msg], return_opts: tuple[str, ...] | None,
            modseq_used: bool, name: str = "SEARCH") -> None:
    numbers = [m.uid if uid else m.seq for m in found]
    modseq = max((m.modseq for m in found), default=None) if modseq_used else None
    if return_opts is None:
        if name == "SORT":
            s.io.write(s.enc.sort(numbers))
        else:
            s.io.write(s.enc.search(numbers, modseq))
        return
    opts = set(return_opts) or {"ALL"}
    if "SAVE" in opts:
        s.saved_search = [m.uid for m in found]
        opts.discard("SAVE")
        if not opts:
            return  # RFC 5182 2.1: SAVE alone sends no ESEARCH
    if name == "SORT" and "ALL" in opts:
        # ESORT (RFC 5267): ALL keeps the sort order, so it is not a compacted set.
        line = s.enc.esearch(tag, uid, min=min(numbers) if "MIN" in opts and numbers else None,
                             max=max(numbers) if "MAX" in opts and numbers else None,
                             count=len(numbers) if "COUNT" in opts else None, modseq=modseq)
        if numbers:
            line = line[:-2] + b" ALL " + ",".join(str(n) for n in numbers).encode() + b"\r\n"
        s.io.write(line)
        return
    s.io.write(s.enc.esearch(
        tag, uid,
        min=min(numbers) if "MIN" in opts and numbers else None,
        max=max(numbers) if "MAX" in opts and numbers else None,
        count=len(numbers) if "COUNT" in opts else None,
        all=numbers if "ALL" in opts and numbers else None,
        modseq=modseq if numbers else None,
    ))


async def run(s: Session, cmd: Search) -> str:
    modseq_used = uses_modseq(cmd.criteria)
    if modseq_used:
        s.condstore_used = True
    found = await evaluate(s, cmd.criteria)
    ret = cmd.return_opts
    if ret is None and s.rev2:
        ret = ()  # RFC 9051 7.3.4: IMAP4rev2 answers every SEARCH with ESEARCH
    respond(s, cmd.tag, cmd.uid, found, ret, modseq_used)
    return "SEARCH completed"
