"""STORE and UID STORE (RFC 9051 6.4.6) with .SILENT and CONDSTORE UNCHANGEDSINCE (RFC 7162
3.1.3). The store returns the new flags and modseq of what changed; they go into the shared
mailbox cache at once (other sessions then see them as unsolicited FETCH at their next allowed
moment) and this session answers with FETCH for the messages of the set."""

from __future__ import annotations

from mailcove.core import cooperative
from mailcove.imap.session import Reply, Session
from mailcove.proto.imap.commands import Store
from mailcove.proto.imap.seqset import compact


async def run(s: Session, cmd: Store) -> tuple[str, str] | str:
    view = s.require_view()
    if view.readonly:
        raise Reply("NO", "Mailbox is read-only", "READ-ONLY")
    if not cmd.uid and view.bad_seqs(cmd.seqset):
        raise Reply("BAD", "Invalid message sequence number")
    if cmd.unchangedsince is not None:
        s.use_condstore()
    uids = [u for u in view.resolve(cmd.seqset, cmd.uid, s.saved_search) if not view.is_expunged(u)]
    flags = [f for f in cmd.flags if f != "\\Recent"]
    op = {"": "=", "+": "+", "-": "-"}[cmd.mode]
    modified: list[int] = []
    if uids:
        result = await s.store.store_flags(
            view.cache.mailbox_id, uids, op, flags, unchanged_since=cmd.unchangedsince  # type: ignore[arg-type]
        )
        await view.cache.apply_flags(result.changed, origin=view)
        modified = result.modified
        changed = {e.uid for e in result.changed}
    else:
        changed = set()
    mod_set = set(modified)
    for uid in uids:
        await cooperative.pause()
        if uid in mod_set:
            continue
        # .SILENT: nothing about our own change; with CONDSTORE the new MODSEQ is still sent for
        # what changed (RFC 7162 3.1.3), so the client can keep its HIGHESTMODSEQ.
        if cmd.silent and not (s.condstore and uid in changed):
            continue
        seq = view.seq_of(uid)
        if seq is None:
            continue
        items: list[tuple[str, bytes]] = []
        if cmd.uid:
            items.append(("UID", b"%d" % uid))
        if not cmd.silent:
            s.check_keywords()  # a new keyword (ours, or stored elsewhere while we flushed) first
            items.append(("FLAGS", s.flags_bytes(view.flags_of(uid), uid in view.recent)))
        if s.condstore:
            items.append(("MODSEQ", b"(%d)" % view.modseq_of(uid)))
        s.write(s.enc.fetch_bytes(seq, items))
        await s.io.maybe_flush()
    view.pending_flags.difference_update(uids)
    if modified:
        shown = modified if cmd.uid else [q for q in (view.seq_of(u) for u in modified) if q is not None]
        return f"MODIFIED {compact(shown)}", "Conditional STORE failed for some messages"
    return "STORE completed"
