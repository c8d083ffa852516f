"""QUOTA (RFC 9208): one root per user, "" (the whole account), from `store.usage()`.
SETQUOTA is refused: limits are the administrator's (`mailcove user quota`)."""

from __future__ import annotations

from mailcove.imap.session import Reply, Session
from mailcove.proto.imap.commands import GetQuota, GetQuotaRoot, SetQuota


async def _quota(s: Session) -> None:
    u = await s.store.usage(s.user)
    res: list[tuple[str, int, int]] = []
    if u.max_bytes:
        res.append(("STORAGE", (u.bytes + 1023) // 1024, u.max_bytes // 1024))
    if u.max_messages:
        res.append(("MESSAGE", u.messages, u.max_messages))
    s.io.write(s.enc.quota("", res))


async def run(s: Session, cmd: GetQuota | GetQuotaRoot | SetQuota) -> str:
    if isinstance(cmd, SetQuota):
        raise Reply("NO", "Quota limits are set by the administrator", "NOPERM")
    if isinstance(cmd, GetQuota):
        if cmd.root != "":
            raise Reply("NO", "No such quota root", "NONEXISTENT")
        await _quota(s)
        return "GETQUOTA completed"
    await s.store.get_mailbox(s.user, cmd.mailbox)
    s.io.write(s.enc.quotaroot(cmd.mailbox, [""]))
    await _quota(s)
    return "GETQUOTAROOT completed"
