"""EXPUNGE and UID EXPUNGE (RFC 9051 6.4.3 / 6.4.9, UIDPLUS). The EXPUNGE responses themselves
are sent by the session's announce step after the command, like every other session's."""

from __future__ import annotations

from mailcove.imap.session import Reply, Session
from mailcove.proto.imap.commands import Expunge


async def run(s: Session, cmd: Expunge) -> str:
    view = s.require_view()
    if view.readonly:
        raise Reply("NO", "Mailbox is read-only", "READ-ONLY")
    targets = [u for u in view.uids if "\\Deleted" in view.flags_of(u) and not view.is_expunged(u)]
    if cmd.uids is not None:
        ranges = cmd.uids.resolve(view.max_uid)
        targets = [u for u in targets if any(a <= u <= b for a, b in ranges)]
    if targets:
        removed = await s.store.expunge(view.cache.mailbox_id, targets)
        view.cache.apply_expunge(removed)
    return "EXPUNGE completed"
