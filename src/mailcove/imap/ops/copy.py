"""COPY / MOVE and their UID forms (RFC 9051 6.4.7/6.4.8, RFC 6851 MOVE, UIDPLUS COPYUID)."""

from __future__ import annotations

from mailcove.core.errors import MailboxNotFound
from mailcove.imap.session import Reply, Session
from mailcove.proto.imap.commands import Copy
from mailcove.proto.imap.seqset import compact


async def run(s: Session, cmd: Copy) -> tuple[str, str] | str:
    view = s.require_view()
    move = cmd.name == "MOVE"
    if move and view.readonly:
        raise Reply("NO", "Mailbox is read-only", "READ-ONLY")
    if not cmd.uid and view.bad_seqs(cmd.seqset):
        raise Reply("BAD", "Invalid message sequence number")
    try:
        dest = await s.store.get_mailbox(s.user, cmd.mailbox)
    except MailboxNotFound:
        raise Reply("NO", "Destination mailbox does not exist", "TRYCREATE") from None
    if dest.noselect:
        raise Reply("NO", "Destination mailbox does not exist", "TRYCREATE")
    uids = view.resolve(cmd.seqset, cmd.uid, s.saved_search)
    if any(view.is_expunged(u) for u in uids):
        # RFC 2180 4.4.1 (and Dovecot): a copy that cannot be whole copies nothing.
        raise Reply("NO", "Some of the requested messages no longer exist", "EXPUNGEISSUED")
    if not uids:
        return f"{cmd.name} completed"  # nothing matched: OK without COPYUID
    if move:
        result = await s.store.move(view.cache.mailbox_id, uids, dest.id)
    else:
        result = await s.store.copy(view.cache.mailbox_id, uids, dest.id)
    if not result.pairs:
        return f"{cmd.name} completed"
    code = f"COPYUID {result.uidvalidity} {compact(p[0] for p in result.pairs)} {compact(p[1] for p in result.pairs)}"
    if dest.id == view.cache.mailbox_id:
        # Into the selected mailbox itself: the new messages are this command's to announce
        # (EXISTS with the response), not something the change bus brings in later.
        await s.ctx.registry.add_appended(view.cache, [p[1] for p in result.pairs])
    if not move:
        return code, "COPY completed"
    # RFC 6851 3.3: COPYUID in an untagged OK before the expunges, then the expunges at once.
    s.untagged_status("OK", "Moved", code)
    view.cache.apply_expunge([p[0] for p in result.pairs])
    await s.announce(allow_expunge=True)
    return "MOVE completed"
