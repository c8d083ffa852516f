"""DELETE (RFC 9051 6.3.5). A mailbox with inferiors stays as a \\Noselect name (the store's rule).

DELETE does not unsubscribe (RFC 3501 6.3.6, RFC 9051 6.3.7: the server MUST NOT remove a name
from the subscriptions because its mailbox no longer exists): a subscribed name is subscribed again
after the delete, which leaves the store's placeholder for it (LIST (SUBSCRIBED) shows it as
\\NonExistent, RFC 5258)."""

from __future__ import annotations

from mailcove.imap.session import Reply, Session
from mailcove.proto.imap.commands import Delete


async def run(s: Session, cmd: Delete) -> str:
    if cmd.mailbox.upper() == "INBOX":
        raise Reply("NO", "INBOX cannot be deleted", "CANNOT")
    mb = await s.store.get_mailbox(s.user, cmd.mailbox)
    if mb.noselect:
        prefix = mb.name + "/"
        if not any(b.name.startswith(prefix) for b in await s.store.list_mailboxes(s.user)):
            # only a subscription keeps this name: there is no mailbox to delete
            raise Reply("NO", f"no such mailbox: {mb.name}", "NONEXISTENT")
    if s.mailbox is not None and s.mailbox.id == mb.id:
        # Deleting the selected mailbox: leave it first, as Dovecot does.
        s.close_view()
    await s.store.delete_mailbox(s.user, cmd.mailbox)
    if mb.subscribed:
        await s.store.set_subscribed(s.user, mb.name, True)
    return "DELETE completed"
