"""RENAME (RFC 9051 6.3.6): inferiors move along; renaming INBOX moves its messages to the new
name and leaves INBOX empty (the store implements both).

A new name that only subscriptions hold (the store's \\Noselect placeholders, which DELETE leaves
for subscribed mailboxes, RFC 3501 6.3.6; see ops/delete.py) is no mailbox and does not make
RENAME fail with ALREADYEXISTS: the placeholders give way and the subscriptions stay on the names."""

from __future__ import annotations

from mailcove.core.errors import MailboxExists
from mailcove.imap.ops.delete import below, drop_placeholders, resubscribe
from mailcove.imap.session import Reply, Session
from mailcove.proto.imap.commands import Rename
from mailcove.store.api import Mailbox
from mailcove.store.names import normalize_name


async def run(s: Session, cmd: Rename) -> str:
    new = cmd.new.rstrip("/")
    if new.upper() == "INBOX":
        raise Reply("NO", "INBOX already exists", "ALREADYEXISTS")
    target = normalize_name(new)
    boxes = await s.store.list_mailboxes(s.user)
    holder = next((b for b in boxes if b.name == target), None)
    placeholders: list[Mailbox] = []
    if holder is not None and holder.noselect:
        inferiors = below(boxes, target)
        if not any(not b.noselect for b in inferiors):
            placeholders = [holder, *inferiors]
    await drop_placeholders(s, placeholders)
    try:
        await s.store.rename_mailbox(s.user, cmd.old, new)
    except MailboxExists:
        raise Reply("NO", "Mailbox already exists", "ALREADYEXISTS") from None
    finally:
        await resubscribe(s, placeholders)
    return "RENAME completed"
