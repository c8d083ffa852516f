"""LIST (RFC 9051 6.3.9) with LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), SPECIAL-USE
(RFC 6154), CHILDREN; and LSUB (RFC 3501 6.3.9).

Only `list_mailboxes(self.user)` is ever consulted: no pattern can reach another account."""

from __future__ import annotations

import re

from mailcove.imap.ops.status import status_items
from mailcove.imap.session import Session
from mailcove.proto.imap.commands import List, Lsub
from mailcove.store.api import Mailbox

SEP = "/"


def pattern_regex(reference: str, pattern: str) -> re.Pattern[str]:
    full = reference + pattern if not pattern.startswith(SEP) or not reference else reference.rstrip(SEP) + pattern
    if full[:5].upper() == "INBOX" and (len(full) == 5 or full[5] in (SEP, "*", "%")):
        full = "INBOX" + full[5:]
    out = []
    for ch in full:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append("[^/]*")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _attrs(mb: Mailbox, names: set[str], want_subscribed: bool) -> list[str]:
    attrs: list[str] = []
    if mb.noselect:
        attrs.append("\\Noselect")
    prefix = mb.name + SEP
    has_children = any(n.startswith(prefix) for n in names)
    attrs.append("\\HasChildren" if has_children else "\\HasNoChildren")
    if mb.special_use:
        attrs.append(mb.special_use)  # always, not only for RETURN (SPECIAL-USE): RFC 6154 allows it
    if want_subscribed and mb.subscribed:
        attrs.append("\\Subscribed")
    return attrs


async def run(s: Session, cmd: List | Lsub) -> str:
    boxes = await s.store.list_mailboxes(s.user)
    names = {b.name for b in boxes}
    if isinstance(cmd, Lsub):
        rx = pattern_regex(cmd.reference, cmd.pattern)
        for mb in boxes:
            if mb.subscribed and rx.fullmatch(mb.name):
                s.io.write(s.enc.list(["\\Noselect"] if mb.noselect else [], SEP, mb.name, lsub=True))
        return "LSUB completed"
    if cmd.patterns == ("",):
        # RFC 9051 6.3.9: the hierarchy delimiter and root name.
        s.untagged('LIST (\\Noselect) "/" ""')
        return "LIST completed"
    regexes = [pattern_regex(cmd.reference, p) for p in cmd.patterns]
    sel = cmd.selection
    ret = cmd.return_opts
    want_subscribed = "SUBSCRIBED" in sel or "SUBSCRIBED" in ret
    only_special = "SPECIAL-USE" in sel
    for mb in boxes:
        if not any(rx.fullmatch(mb.name) for rx in regexes):
            continue
        extended: dict[str, bytes] | None = None
        if "SUBSCRIBED" in sel and not mb.subscribed:
            if "RECURSIVEMATCH" in sel and any(b.subscribed and b.name.startswith(mb.name + SEP) for b in boxes):
                extended = {"CHILDINFO": b'("SUBSCRIBED")'}
            else:
                continue
        if only_special and not mb.special_use:
            continue
        attrs = _attrs(mb, names, want_subscribed)
        s.io.write(s.enc.list(attrs, SEP, mb.name, extended))
        if cmd.status_items and not mb.noselect:
            s.io.write(s.enc.status(mb.name, await status_items(s, mb, cmd.status_items)))
        await s.io.maybe_flush()
    return "LIST completed"
