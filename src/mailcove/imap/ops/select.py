"""SELECT and EXAMINE (RFC 9051 6.3.2/6.3.3), with CONDSTORE (RFC 7162 3.1.8) and QRESYNC
(3.2.5). The sequence map comes from the process-wide mailbox cache (selected.py), so selecting
a mailbox another session has open reads nothing from the store but its row."""

from __future__ import annotations

from mailcove.imap.selected import SelectedView
from mailcove.imap.session import SELECTED, Reply, Session
from mailcove.proto.imap.commands import Select


async def run(s: Session, cmd: Select) -> tuple[str, str]:
    if s.view is not None:
        s.close_view()
        if s.qresync:
            s.untagged_status("OK", "Previous mailbox closed", "CLOSED")
    if cmd.qresync is not None and not s.qresync:
        raise Reply("BAD", "QRESYNC parameter without ENABLE QRESYNC")
    if cmd.condstore:
        s.condstore_used = True
    mb = await s.store.get_mailbox(s.user, cmd.mailbox)
    if mb.noselect:
        raise Reply("NO", f"{cmd.mailbox} cannot be selected", "NONEXISTENT")
    cache = await s.ctx.registry.open(mb)
    view = SelectedView(cache, readonly=cmd.readonly, rev1=not s.rev2, uidvalidity=mb.uidvalidity)
    s.view, s.mailbox, s.state = view, mb, SELECTED
    s.saved_search = None
    s.announce_flags(view)
    s.write(s.enc.exists(len(view)))
    view.announced_recent = view.recent_count()
    s.write(s.enc.recent(view.announced_recent))
    if not s.rev2:
        if view.in_step:
            flags = cache.flags
            first_unseen = next((i + 1 for i, f in enumerate(flags) if "\\Seen" not in f), None)
        else:
            first_unseen = next((i + 1 for i, u in enumerate(view.uids) if "\\Seen" not in view.flags_of(u)), None)
        if first_unseen is not None:
            s.untagged_status("OK", "First unseen", f"UNSEEN {first_unseen}")
    s.untagged_status("OK", "UIDs valid", f"UIDVALIDITY {mb.uidvalidity}")
    s.untagged_status("OK", "Predicted next UID", f"UIDNEXT {max(mb.uidnext, view.max_uid + 1)}")
    if s.condstore:
        s.untagged_status("OK", "Highest", f"HIGHESTMODSEQ {max(mb.highestmodseq, cache.highestmodseq, 1)}")
    if cmd.qresync is not None and cmd.qresync.uidvalidity == mb.uidvalidity:
        await _qresync(s, cmd, view)
    return ("READ-ONLY" if cmd.readonly else "READ-WRITE"), f"{cmd.name} completed"


async def _qresync(s: Session, cmd: Select, view: SelectedView) -> None:
    """RFC 7162 3.2.5.2: VANISHED (EARLIER) for what went since the client's modseq, then FETCH for
    what changed since."""
    q = cmd.qresync
    assert q is not None
    max_uid = view.max_uid
    vanished = await s.store.expunged_since(view.cache.mailbox_id, q.modseq)
    if q.known_uids is not None:
        ranges = q.known_uids.resolve(max_uid)
        vanished = [u for u in vanished if any(a <= u <= b for a, b in ranges)]
    if vanished:
        s.write(s.enc.vanished(vanished, earlier=True))
    cache = view.cache
    for i, uid in enumerate(view.uids):
        ms = cache.modseq_of(uid)
        if ms is not None and ms > q.modseq:
            s.check_keywords()
            fl = s.flags_bytes(view.flags_of(uid), uid in view.recent)
            s.write(s.enc.fetch_bytes(i + 1, [("UID", b"%d" % uid), ("FLAGS", fl), ("MODSEQ", b"(%d)" % ms)]))
            await s.io.maybe_flush()
