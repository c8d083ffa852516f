"""DELETE (RFC 9051 6.3.5). A mailbox with inferiors stays as a \\Noselect name (the store's rule)."""

from __future__ import annotations

from mailcove.imap.session import Reply, Session
from mailcove.proto.imap.commands import Delete


async def run(s: Session, cmd: Delete) -> str:
    if cmd.mailbox.upper() == "INBOX":
        raise Reply("NO", "INBOX cannot be deleted", "CANNOT")
    mb = await s.store.get_mailbox(s.user, cmd.mailbox)
    if s.mailbox is not None and s.mailbox.id == mb.id:
        # Deleting the selected mailbox: leave it first, as Dovecot does.
        s.close_view()
    await s.store.delete_mailbox(s.user, cmd.mailbox)
    return "DELETE completed"
