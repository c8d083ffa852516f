"""STATUS (RFC 9051 6.3.11) with STATUS=SIZE (RFC 8438), CONDSTORE HIGHESTMODSEQ, APPENDLIMIT.

Counts come from the mailbox row the store keeps current. DELETED needs the flags: from the
process's mailbox cache when the mailbox is open somewhere, else from one index read."""

from __future__ import annotations

from bisect import bisect_right

from mailcove.imap.session import Reply, Session
from mailcove.proto.imap.commands import Status
from mailcove.store.api import Mailbox


async def status_items(s: Session, mb: Mailbox, items: tuple[str, ...]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    cache = s.ctx.registry.current(mb)
    for item in items:
        if item == "MESSAGES":
            out[item] = len(cache.uids) if cache is not None else mb.messages
        elif item == "RECENT":
            # What no session has been given as \\Recent yet; with no open
            # cache and no floor nobody was, so every message counts (as for a first SELECT).
            # For the session's own selected mailbox, its own \\Recent count (as Dovecot).
            if s.view is not None and s.view.cache is cache and cache is not None:
                out[item] = s.view.recent_count()
            elif cache is not None:
                out[item] = cache.unclaimed_recent()
            else:
                floor = s.ctx.registry.recent.get((mb.id, mb.uidvalidity))
                if floor is None:
                    out[item] = mb.messages
                else:
                    uids = (await s.store.index(mb.id)).uids
                    out[item] = len(uids) - bisect_right(uids, floor)
        elif item == "UIDNEXT":
            out[item] = max(mb.uidnext, (cache.uids[-1] + 1) if cache is not None and cache.uids else 0)
        elif item == "UIDVALIDITY":
            out[item] = mb.uidvalidity
        elif item == "UNSEEN":
            if cache is not None:
                out[item] = sum(1 for f in cache.flags if "\\Seen" not in f)
            else:
                out[item] = mb.unseen
        elif item == "DELETED":
            flags = cache.flags if cache is not None else (await s.store.index(mb.id)).flags
            out[item] = sum(1 for f in flags if "\\Deleted" in f)
        elif item == "SIZE":
            out[item] = mb.size
        elif item == "HIGHESTMODSEQ":
            s.use_condstore()
            out[item] = max(mb.highestmodseq, cache.highestmodseq if cache is not None else 0, 1)
        elif item == "APPENDLIMIT":
            out[item] = s.ctx.limits.appendlimit
        elif item == "MAILBOXID":
            continue  # OBJECTID is not advertised
    return out


async def run(s: Session, cmd: Status) -> str:
    mb = await s.store.get_mailbox(s.user, cmd.mailbox)
    if mb.noselect:
        raise Reply("NO", f"{cmd.mailbox} is not selectable", "NONEXISTENT")
    s.io.write(s.enc.status(mb.name, await status_items(s, mb, cmd.items)))
    return "STATUS completed"
