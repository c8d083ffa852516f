"""LIST (RFC 9051 6.3.9) with LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), SPECIAL-USE
(RFC 6154), CHILDREN; and LSUB (RFC 3501 6.3.9).

Only `list_mailboxes(self.user)` is ever consulted: no pattern can reach another account."""

from __future__ import annotations

from bisect import bisect_left

from mailcove.core import cooperative
from mailcove.imap.ops.status import status_items
from mailcove.imap.session import Session
from mailcove.proto.imap.commands import List, Lsub
from mailcove.store.api import Mailbox
from mailcove.store.names import MAX_NAME_LENGTH

SEP = "/"


class Glob:
    """A LIST pattern: "*" matches anything, "%" anything but the separator (RFC 9051 6.3.9).

    Matched by simulating the pattern's automaton with one bit per position (an int as the bit
    set), so a name costs one step per character whatever the pattern: a regex with several
    ".*" backtracks polynomially ("*a*a*a*a*a*a*b" against a long name of "a"s took minutes)."""

    __slots__ = ("_accept", "_literal", "_pct", "_star", "_wild")

    def __init__(self, pattern: str) -> None:
        tokens: list[str] = []
        for ch in pattern:
            if ch in "*%" and tokens and tokens[-1] in "*%":
                # adjacent wildcards are one: "*" if either is "*"
                if ch == "*":
                    tokens[-1] = "*"
                continue
            tokens.append(ch)
        self._literal: dict[str, int] = {}
        self._star = self._pct = 0
        if sum(1 for t in tokens if t not in "*%") > MAX_NAME_LENGTH:
            # More literal characters than any name has: nothing can match, and the automaton's
            # size stays bounded by the longest possible name, whatever the client sends.
            tokens = ["\x00"]
        for i, t in enumerate(tokens):
            if t == "*":
                self._star |= 1 << i
            elif t == "%":
                self._pct |= 1 << i
            else:
                self._literal[t] = self._literal.get(t, 0) | 1 << i
        self._wild = self._star | self._pct
        self._accept = 1 << len(tokens)

    def _closure(self, states: int) -> int:
        # a wildcard may match nothing; wildcards are never adjacent, so one step is enough
        return states | (states & self._wild) << 1

    def fullmatch(self, name: str) -> bool:
        states = self._closure(1)
        star, pct, literal = self._star, self._pct, self._literal
        for ch in name:
            nxt = (states & literal.get(ch, 0)) << 1 | states & star
            if ch != SEP:
                nxt |= states & pct
            states = self._closure(nxt)
            if not states:
                return False
        return bool(states & self._accept)


def pattern_regex(reference: str, pattern: str) -> Glob:
    """The matcher for a LIST reference and pattern (INBOX is case-insensitive)."""
    full = reference + pattern if not pattern.startswith(SEP) or not reference else reference.rstrip(SEP) + pattern
    if full[:5].upper() == "INBOX" and (len(full) == 5 or full[5] in (SEP, "*", "%")):
        full = "INBOX" + full[5:]
    return Glob(full)


def _ancestors(names: set[str]) -> set[str]:
    """Every proper hierarchy ancestor of every name ("a/b/c" gives "a" and "a/b")."""
    out: set[str] = set()
    for n in names:
        i = n.find(SEP)
        while i > 0:
            out.add(n[:i])
            i = n.find(SEP, i + 1)
    return out


class _View:
    """The account's names as LIST sees them. A row is a real mailbox unless it is \\Noselect; a
    \\Noselect name with an existing inferior is a hierarchy node that exists (\\Noselect); a name
    with neither (a subscription whose mailbox is gone or never existed) does not exist
    (RFC 5258 \\NonExistent) and shows only where subscriptions are asked for."""

    def __init__(self, boxes: list[Mailbox]) -> None:
        self.rows = {b.name: b for b in boxes}
        self.real = {b.name for b in boxes if not b.noselect}
        self.parents = _ancestors(self.real)  # names with an existing inferior
        self.subscribed = {b.name for b in boxes if b.subscribed}
        self.subscribed_sorted = sorted(self.subscribed)

    def exists(self, name: str) -> bool:
        return name in self.real or name in self.parents

    def attrs(self, name: str, want_subscribed: bool) -> list[str]:
        attrs: list[str] = []
        if not self.exists(name):
            attrs.append("\\NonExistent")  # implies \\Noselect (RFC 5258 3.4)
        else:
            if name not in self.real:
                attrs.append("\\Noselect")
            attrs.append("\\HasChildren" if name in self.parents else "\\HasNoChildren")
            mb = self.rows.get(name)
            if mb is not None and mb.special_use:
                attrs.append(mb.special_use)  # always, not only for RETURN (SPECIAL-USE): RFC 6154 allows it
        if want_subscribed and name in self.subscribed:
            attrs.append("\\Subscribed")
        return attrs


def _order(names: set[str]) -> list[str]:
    return sorted(names, key=lambda n: (n != "INBOX", n))


def _unreturned_descendant(name: str, among: list[str], regexes: list[Glob]) -> bool:
    """Whether some name in `among` (sorted) is an inferior of `name` that no pattern returns
    itself: then `name` stands for it (LSUB's "%" rule, RFC 3501 6.3.9; RECURSIVEMATCH's
    CHILDINFO, RFC 5258 3.5). The inferiors are one contiguous run of the sorted list."""
    prefix = name + SEP
    for i in range(bisect_left(among, prefix), len(among)):
        d = among[i]
        if not d.startswith(prefix):
            break
        if not any(rx.fullmatch(d) for rx in regexes):
            return True
    return False


async def run(s: Session, cmd: List | Lsub) -> str:
    boxes = await s.store.list_mailboxes(s.user)
    view = _View(boxes)
    if isinstance(cmd, Lsub):
        if cmd.pattern is None:
            return "LSUB completed"
        rx = pattern_regex(cmd.reference, cmd.pattern)
        for name in _order(view.subscribed | _ancestors(view.subscribed)):
            await cooperative.pause()
            if not rx.fullmatch(name):
                continue
            if name not in view.subscribed and not _unreturned_descendant(name, view.subscribed_sorted, [rx]):
                continue
            noselect = name not in view.subscribed or name not in view.real
            s.io.write(s.enc.list(["\\Noselect"] if noselect else [], SEP, name, lsub=True))
        return "LSUB completed"
    if cmd.patterns == ("",):
        # RFC 9051 6.3.9: the hierarchy delimiter and root name.
        s.write(s.enc.list(["\\Noselect"], SEP, ""))
        return "LIST completed"
    regexes = [pattern_regex(cmd.reference, p) for p in cmd.patterns]
    sel = cmd.selection
    ret = cmd.return_opts
    want_subscribed = "SUBSCRIBED" in sel or "SUBSCRIBED" in ret
    only_subscribed = "SUBSCRIBED" in sel
    recursive = "RECURSIVEMATCH" in sel
    only_special = "SPECIAL-USE" in sel
    if only_subscribed:
        candidates = view.subscribed | (_ancestors(view.subscribed) if recursive else set())
    else:
        candidates = view.real | view.parents
    for name in _order(candidates):
        await cooperative.pause()  # 10,000 names: other clients are served in between
        if not any(rx.fullmatch(name) for rx in regexes):
            continue
        extended: dict[str, bytes] | None = None
        if only_subscribed and recursive and _unreturned_descendant(name, view.subscribed_sorted, regexes):
            extended = {"CHILDINFO": b'("SUBSCRIBED")'}
        elif only_subscribed and name not in view.subscribed:
            continue
        mb = view.rows.get(name)
        if only_special and (mb is None or not mb.special_use):
            continue
        s.io.write(s.enc.list(view.attrs(name, want_subscribed), SEP, name, extended))
        if cmd.status_items and mb is not None and name in view.real:
            s.io.write(s.enc.status(name, await status_items(s, mb, cmd.status_items)))
        await s.io.maybe_flush()
    return "LIST completed"
