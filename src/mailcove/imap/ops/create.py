"""CREATE (RFC 9051 6.3.4) with CREATE-SPECIAL-USE (RFC 6154 3)."""

from __future__ import annotations

from mailcove.core.errors import MailboxExists
from mailcove.imap.session import Reply, Session
from mailcove.proto.imap.commands import Create

SPECIAL_USES = frozenset({"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"})


async def run(s: Session, cmd: Create) -> str:
    name = cmd.mailbox.rstrip("/")  # a trailing separator only says "will have inferiors"
    if name.upper() == "INBOX":
        raise Reply("NO", "INBOX always exists", "ALREADYEXISTS")
    special = None
    if cmd.special_use:
        uses = {u.capitalize() if not u.startswith("\\") else "\\" + u[1:].capitalize() for u in cmd.special_use}
        bad = uses - SPECIAL_USES
        if bad or len(uses) > 1:
            raise Reply("NO", "Unsupported special-use attribute", "USEATTR")
        special = next(iter(uses))
    try:
        await s.store.create_mailbox(s.user, name, special)
    except MailboxExists:
        raise Reply("NO", "Mailbox already exists", "ALREADYEXISTS") from None
    return "CREATE completed"
