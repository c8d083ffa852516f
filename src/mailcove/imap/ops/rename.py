"""RENAME (RFC 9051 6.3.6): inferiors move along; renaming INBOX moves its messages to the new
name and leaves INBOX empty (the store implements both).

A new name that only a subscription holds (the store's \\Noselect placeholder without inferiors,
which DELETE leaves for a subscribed mailbox, RFC 3501 6.3.6) is no mailbox and does not make
RENAME fail with ALREADYEXISTS: the placeholder gives way and the subscription stays on the name."""

from __future__ import annotations

from mailcove.core.errors import MailboxExists
from mailcove.imap.session import Reply, Session
from mailcove.proto.imap.commands import Rename
from mailcove.store.api import SEPARATOR
from mailcove.store.names import normalize_name


async def run(s: Session, cmd: Rename) -> str:
    new = cmd.new.rstrip("/")
    if new.upper() == "INBOX":
        raise Reply("NO", "INBOX already exists", "ALREADYEXISTS")
    target = normalize_name(new)
    boxes = await s.store.list_mailboxes(s.user)
    holder = next((b for b in boxes if b.name == target), None)
    placeholder = (holder is not None and holder.noselect
                   and not any(b.name.startswith(target + SEPARATOR) for b in boxes))
    if placeholder:
        await s.store.delete_mailbox(s.user, target)
    try:
        await s.store.rename_mailbox(s.user, cmd.old, new)
    except MailboxExists:
        raise Reply("NO", "Mailbox already exists", "ALREADYEXISTS") from None
    finally:
        if placeholder and holder is not None and holder.subscribed:
            await s.store.set_subscribed(s.user, target, True)
    return "RENAME completed"
