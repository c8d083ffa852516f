"""SEARCH and UID SEARCH (RFC 9051 6.4.4): every key (imap/search.py), CHARSET UTF-8 / US-ASCII,
ESEARCH RETURN (MIN MAX COUNT ALL SAVE) (RFC 4731 / rev2), SEARCHRES (RFC 5182), CONDSTORE
MODSEQ (RFC 7162 3.1.5)."""

from __future__ import annotations

from mailcove.imap.search import Evaluator, Msg, simplify, uses_modseq
from mailcove.imap.session import Session
from mailcove.proto.imap.commands import Search
from mailcove.proto.imap.commands.search import SearchKey


async def evaluate(s: Session, criteria: SearchKey) -> list[Msg]:
    view = s.require_view()
    cache = view.cache
    ev = Evaluator(s.store, cache.mailbox_id, count=len(view), max_uid=view.max_uid, saved=s.saved_search,
                   recent=view.recent, light=cache.light, clock=s.ctx.clock)
    # The full-text index may bound the matches of a BODY/TEXT search to a few UIDs: only those
    # messages are looked at (sequence numbers stay the positions in the whole view).
    bound = await ev.narrow(simplify(criteria), view.pending_expunged)
    if view.in_step:
        # Positions agree with the cache: no per-message lookup.
        if bound is None:
            msgs = [Msg(i + 1, uid, fl, ms)
                    for i, (uid, fl, ms) in enumerate(zip(view.uids, cache.flags, cache.modseqs, strict=True))]
        else:
            flags, modseqs = cache.flags, cache.modseqs
            msgs = [Msg(i + 1, uid, flags[i], modseqs[i]) for i, uid in enumerate(view.uids) if uid in bound]
    else:
        # A message expunged elsewhere but not announced yet keeps its number and its last
        # flags; keys that need its metadata cannot match it any more (the store has no row).
        msgs = [Msg(i + 1, uid, view.flags_of(uid), cache.modseq_of(uid) or 0) for i, uid in enumerate(view.uids)
                if bound is None or uid in bound]
    return await ev.run(criteria, msgs)


def _result_modseq(found: list[Msg], opts: set[str]) -> int | None:
    """RFC 7162 3.1.5 / RFC 4731 3.2: the highest MODSEQ of the messages the answer returns:
    every match for ALL or COUNT (and a plain SEARCH), only the lowest and/or highest one when
    MIN and/or MAX are all that was asked."""
    if not found:
        return None
    if opts and not opts & {"ALL", "COUNT"}:
        lo = min(found, key=lambda m: m.seq)
        hi = max(found, key=lambda m: m.seq)
        chosen = [m for m, want in ((lo, "MIN" in opts), (hi, "MAX" in opts)) if want]
        return max((m.modseq for m in chosen), default=None)
    return max(m.modseq for m in found)


def respond(s: Session, tag: str, uid: bool, found: list[Msg], return_opts: tuple[str, ...] | None,
            modseq_used: bool, name: str = "SEARCH") -> None:
    """`found` in the answer's order (sequence order for SEARCH, sort order for SORT)."""
    numbers = [m.uid if uid else m.seq for m in found]
    if return_opts is None:
        if name == "SORT":
            s.write(s.enc.sort(numbers, _result_modseq(found, set()) if modseq_used else None))
        else:
            s.io.write(s.enc.search(numbers, _result_modseq(found, set()) if modseq_used else None))
        return
    opts = set(return_opts) or {"ALL"}
    if "SAVE" in opts:
        opts.discard("SAVE")
        if opts and not opts & {"ALL", "COUNT"} and found:
            # RFC 5182 2.1: with MIN and/or MAX only, just the message(s) they return are saved.
            lo = min(found, key=lambda m: m.seq)
            hi = max(found, key=lambda m: m.seq)
            saved = {m.uid for m, want in ((lo, "MIN" in opts), (hi, "MAX" in opts)) if want}
            s.saved_search = sorted(saved)
        else:
            s.saved_search = sorted(m.uid for m in found)
        if not opts:
            return  # RFC 5182 2.1: SAVE alone sends no ESEARCH
    modseq = _result_modseq(found, opts) if modseq_used else None
    lo_n = min(numbers) if "MIN" in opts and numbers else None
    hi_n = max(numbers) if "MAX" in opts and numbers else None
    count = len(numbers) if "COUNT" in opts else None
    if name == "SORT" and "ALL" in opts and numbers:
        # ESORT (RFC 5267 3.2): ALL keeps the sort order (the encoder's all_in_order).
        s.write(s.enc.esearch(tag, uid, min=lo_n, max=hi_n, count=count, all_in_order=numbers, modseq=modseq))
        return
    s.io.write(s.enc.esearch(tag, uid, min=lo_n, max=hi_n, count=count,
                             all=numbers if "ALL" in opts and numbers else None, modseq=modseq))


async def run(s: Session, cmd: Search) -> str:
    modseq_used = uses_modseq(cmd.criteria)
    if modseq_used:
        s.use_condstore()
    found = await evaluate(s, cmd.criteria)
    ret = cmd.return_opts
    if ret is None and s.rev2:
        ret = ()  # RFC 9051 7.3.4: IMAP4rev2 answers every SEARCH with ESEARCH
    respond(s, cmd.tag, cmd.uid, found, ret, modseq_used)
    return "SEARCH completed"
