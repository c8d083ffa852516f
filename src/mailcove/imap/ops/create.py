"""CREATE (RFC 9051 6.3.4) with CREATE-SPECIAL-USE (RFC 6154 3).

CREATE does not subscribe (RFC 3501 6.3.3, RFC 9051 6.3.4: subscriptions change only by SUBSCRIBE
and UNSUBSCRIBE; Dovecot behaves so, and imaptest's subscribe and listext groups check it). The
store marks every name it inserts as subscribed, so the names this CREATE added (the mailbox and
any superior it had to make) are unsubscribed again here; a subscription that existed before the
CREATE (a placeholder for a name not yet created) is kept."""

from __future__ import annotations

from mailcove.core.errors import MailboxExists
from mailcove.imap.session import Reply, Session
from mailcove.proto.imap.commands import Create
from mailcove.store.names import parents

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
    before = {b.name: b.subscribed for b in await s.store.list_mailboxes(s.user)}
    if len(before) >= s.ctx.limits.max_mailboxes:
        raise Reply("NO", f"Too many mailboxes (at most {s.ctx.limits.max_mailboxes})", "LIMIT")
    try:
        mb = await s.store.create_mailbox(s.user, name, special)
    except MailboxExists:
        raise Reply("NO", "Mailbox already exists", "ALREADYEXISTS") from None
    for added in [*parents(mb.name), mb.name]:
        if not before.get(added, False):
            await s.store.set_subscribed(s.user, added, False)
    return "CREATE completed"
