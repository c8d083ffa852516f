"""DELETE (RFC 9051 6.3.5). A mailbox with inferiors stays as a \\Noselect name (the store's rule).

DELETE does not unsubscribe (RFC 3501 6.3.6, RFC 9051 6.3.7: the server MUST NOT remove a name
from the subscriptions because its mailbox no longer exists): a subscribed name is subscribed again
after the delete, which leaves the store's placeholder for it (LIST (SUBSCRIBED) shows it as
\\NonExistent, RFC 5258).

Only mailboxes that exist count as inferiors. The store keeps a subscription to a missing name as a
\\Noselect row, and its own rule would take such a row for an inferior and keep the deleted name
as \\Noselect. So when every name below the deleted one is such a placeholder, the placeholders
are taken out first and subscribed again afterwards: the mailbox goes away completely, the
subscriptions stay. RENAME uses the same two steps for a new name held only by placeholders."""

from __future__ import annotations

from mailcove.imap.session import Reply, Session
from mailcove.proto.imap.commands import Delete
from mailcove.store.api import SEPARATOR, Mailbox


def below(boxes: list[Mailbox], name: str) -> list[Mailbox]:
    prefix = name + SEPARATOR
    return [b for b in boxes if b.name.startswith(prefix)]


async def drop_placeholders(s: Session, rows: list[Mailbox]) -> None:
    """Delete \\Noselect rows that stand for no mailbox, deepest first (so that none still has a
    row below it when it goes); `resubscribe` puts their subscriptions back."""
    for p in sorted(rows, key=lambda b: b.name.count(SEPARATOR), reverse=True):
        await s.store.delete_mailbox(s.user, p.name)


async def resubscribe(s: Session, rows: list[Mailbox]) -> None:
    for row in rows:
        if row.subscribed:
            await s.store.set_subscribed(s.user, row.name, True)


async def run(s: Session, cmd: Delete) -> str:
    if cmd.mailbox.upper() == "INBOX":
        raise Reply("NO", "INBOX cannot be deleted", "CANNOT")
    mb = await s.store.get_mailbox(s.user, cmd.mailbox)
    inferiors = below(await s.store.list_mailboxes(s.user), mb.name)
    has_real_inferior = any(not b.noselect for b in inferiors)
    if mb.noselect and not has_real_inferior:
        # only a subscription (or nothing but placeholders) keeps this name: no mailbox to delete
        raise Reply("NO", f"no such mailbox: {mb.name}", "NONEXISTENT")
    if s.mailbox is not None and s.mailbox.id == mb.id:
        # Deleting the selected mailbox: leave it first, as Dovecot does.
        s.close_view()
    placeholders = [] if has_real_inferior else inferiors
    await drop_placeholders(s, placeholders)
    try:
        await s.store.delete_mailbox(s.user, cmd.mailbox)
    finally:
        await resubscribe(s, [mb, *placeholders])
    return "DELETE completed"
