"""RENAME (RFC 9051 6.3.6): inferiors move along; renaming INBOX moves its messages to the new
name and leaves INBOX empty (the store implements both)."""

from __future__ import annotations

from mailcove.core.errors import MailboxExists
from mailcove.imap.session import Reply, Session
from mailcove.proto.imap.commands import Rename


async def run(s: Session, cmd: Rename) -> str:
    new = cmd.new.rstrip("/")
    if new.upper() == "INBOX":
        raise Reply("NO", "INBOX already exists", "ALREADYEXISTS")
    try:
        await s.store.rename_mailbox(s.user, cmd.old, new)
    except MailboxExists:
        raise Reply("NO", "Mailbox already exists", "ALREADYEXISTS") from None
    return "RENAME completed"
