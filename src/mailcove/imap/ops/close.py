"""CLOSE (RFC 9051 6.4.1): silently expunge \\Deleted messages (read-write only), then leave."""

from __future__ import annotations

from mailcove.imap.session import Session
from mailcove.proto.imap.commands import Close


async def run(s: Session, cmd: Close) -> str:
    view = s.require_view()
    if not view.readonly:
        deleted = [u for u in view.uids if "\\Deleted" in view.flags_of(u) and not view.is_expunged(u)]
        if deleted:
            removed = await s.store.expunge(view.cache.mailbox_id, deleted)
            view.cache.apply_expunge(removed)
    s.close_view()
    return "CLOSE completed"
