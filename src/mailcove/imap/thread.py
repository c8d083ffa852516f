"""THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 sections 2.2 and 4).

Both work over the Message-ID / In-Reply-To / References / base subject / sent date fields the
scanner extracted at delivery, taken from each message's MessageInfo into a small `Fields` record
as the metadata is read (so 100,000 MessageInfo objects never sit in memory at once). The result
is a nested list: a thread node is `(id, children)`, written on the wire by the sans-IO encoder
(`ResponseEncoder.thread`), where a chain of only children is written flat, `(1 2 3)`, and
siblings as sub-lists, `(1 (2)(3))`.

Each algorithm is a generator that yields between steps (`*_steps`): the session drives it with
`cooperative.drive`, which lets the other clients of the process run every few milliseconds, so
threading 100,000 messages never holds the event loop (issue 13's fairness rule).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from mailcove.core.cooperative import sort_steps
from mailcove.imap.sort import sent_date
from mailcove.store.api import MessageMeta

STEP = 64  # items handled between two chances to yield


class Fields(NamedTuple):
    """What threading needs of one message."""

    message_id: str | None
    refs: tuple[str, ...]  # the valid References, else the first valid In-Reply-To
    base_subject: str
    subject_key: bytes  # the base subject as ORDEREDSUBJECT compares it (i;ascii-casemap)
    date: float  # the sent date (RFC 5256)
    is_reply: bool


def fields(meta: MessageMeta) -> Fields:
    from mailcove.message import is_reply_or_forward

    info = meta.info
    base = info.base_subject
    return Fields(
        info.message_id,
        tuple(_valid_ids(info.references) or _valid_ids(info.in_reply_to)[:1]),
        base,
        base.encode("utf-8", "surrogateescape").upper(),
        sent_date(meta),
        bool(info.subject) and is_reply_or_forward(info.subject or ""),
    )


Node = tuple[int, list["Node"]]  # (id, children); id 0 is a dummy (no message)


def ordered_subject_steps(items: Sequence[tuple[int, Fields]]) -> Generator[None, None, list[Node]]:
    """Section 3 ORDEREDSUBJECT: sort by (base subject, sent date), group by base subject; the
    first message of a group is the parent and the others its children; threads in the order
    of their first message's date."""
    keyed = yield from sort_steps(list(items), key=lambda it: (it[1].subject_key, it[1].date, it[0]))
    threads: list[tuple[float, int, Node]] = []
    current: Node | None = None
    subject: bytes | None = None
    for n, (ident, f) in enumerate(keyed):
        if not n % STEP:
            yield
        s = f.subject_key
        if current is None or s != subject:
            current = (ident, [])
            subject = s
            threads.append((f.date, ident, current))
        else:
            current[1].append((ident, []))
    threads = yield from sort_steps(threads, key=lambda t: (t[0], t[1]))
    return [t[2] for t in threads]


@dataclass(eq=False, slots=True)  # slots: no __dict__, one object less per message for the collector
class _Container:
    ident: int = 0  # 0: no message (a reference only)
    date: float = 0.0
    order: int = 0
    subject: str = ""
    is_reply: bool = False
    parent: _Container | None = None
    children: list[_Container] = field(default_factory=list)

    def has_ancestor(self, other: _Container) -> bool:
        """True when `other` is this container or above it: linking other -> self as
        self -> other's child would then make a loop. Walks the parent chain (as long as the
        thread is deep) instead of other's whole subtree."""
        node: _Container | None = self
        while node is not None:
            if node is other:
                return True
            node = node.parent
        return False

    def link(self, child: _Container) -> None:
        if child.parent is not None:
            child.parent.children.remove(child)
        child.parent = self
        self.children.append(child)

    def unlink(self) -> None:
        if self.parent is not None:
            self.parent.children.remove(self)
            self.parent = None


def _valid_ids(ids: Sequence[str]) -> list[str]:
    return [i for i in ids if i and "@" in i] or [i for i in ids if i]


def references_steps(items: Sequence[tuple[int, Fields]]) -> Generator[None, None, list[Node]]:
    """Section 4 REFERENCES (the JWZ algorithm as RFC 5256 specifies it)."""
    table: dict[str, _Container] = {}
    unique = 0
    for order, (ident, f) in enumerate(items):
        if not order % STEP:
            yield
        mid = f.message_id
        # (1A) a message without a Message-ID, or with one seen already, is unique.
        if not mid or (mid in table and table[mid].ident):
            unique += 1
            mid = f"\x00unique{unique}"
        c = table.setdefault(mid, _Container())
        c.ident, c.date, c.order = ident, f.date, order
        c.subject = f.base_subject
        c.is_reply = f.is_reply
        # (1B) link the references chain in order, each the parent of the next, unless the
        # child has a parent already or the link would make a loop.
        prev: _Container | None = None
        for ref in f.refs:
            r = table.setdefault(ref, _Container())
            # A container without children is nobody's ancestor: no walk needed (a References
            # field of thousands of new ids costs linear time).
            if prev is not None and r.parent is None and r is not prev \
                    and (not r.children or not prev.has_ancestor(r)):
                prev.link(r)
            prev = r
        # (1C) the last reference is this message's parent: a parent guessed earlier from
        # another message's References is broken off first, "since the most recent parent is
        # probably incorrect", and the new link is made only when it makes no loop. So a message
        # that another one's References put under X, but whose own reference is a descendant of
        # it, becomes a root instead of staying under X.
        if prev is not c.parent or prev is None:
            c.unlink()
            if prev is not None and prev is not c and (not c.children or not prev.has_ancestor(c)):
                prev.link(c)
    yield
    # (2) the root set.
    roots = [c for c in table.values() if c.parent is None]
    containers = list(table.values())
    del table
    # (3) prune dummies.
    roots = yield from _prune(roots)
    # (4) sort siblings by date (dummies by their first child's date after sorting).
    roots = yield from _sort(roots)
    # (5) merge threads with the same base subject.
    roots = yield from _group_subjects(roots)
    # (6) sort the root set again.
    roots = yield from _sort(roots)
    nodes = yield from _to_nodes(roots)
    # Parents and children point at each other: left as they are, 100,000 messages' containers
    # would be cyclic garbage that only a full collection of the garbage collector frees (~1 s
    # on the event loop, measured by bench/fairness). Unlinked, reference counting frees them.
    yield from _dismantle(containers + (yield from _preorder(roots)))
    return nodes


# Every walk over the tree below is iterative: a thread is as deep as the longest References
# chain in the mailbox (mail anyone can send), far deeper than Python's recursion limit.


def _preorder(roots: list[_Container]) -> Generator[None, None, list[_Container]]:
    out: list[_Container] = []
    stack = list(reversed(roots))
    while stack:
        if not len(out) % STEP:
            yield
        c = stack.pop()
        out.append(c)
        stack.extend(reversed(c.children))
    return out


def _prune(roots: list[_Container]) -> Generator[None, None, list[_Container]]:
    """Step 3: an empty dummy goes; a dummy's children take its place, except at the top where
    a dummy with two or more children stays. Children are pruned before their parent."""

    def pruned(siblings: list[_Container], top: bool) -> list[_Container]:
        out: list[_Container] = []
        for c in siblings:
            if c.ident == 0 and (not top or len(c.children) <= 1):
                out.extend(c.children)  # an empty dummy adds nothing
            else:
                out.append(c)
        return out

    order = yield from _preorder(roots)
    for n, c in enumerate(reversed(order)):
        if not n % STEP:
            yield
        c.children = pruned(c.children, top=False)
        for child in c.children:
            child.parent = c
    top = pruned(roots, top=True)
    for c in top:
        c.parent = None
    return top


def _date(c: _Container) -> tuple[float, int]:
    """A message's sent date (ties in mailbox order); a dummy's is its first child's (after
    pruning a dummy is only ever at the top, its children are messages)."""
    if not c.ident and c.children:
        c = c.children[0]
    return (c.date, c.order)


def _sort(roots: list[_Container]) -> Generator[None, None, list[_Container]]:
    """Sort every set of siblings, the deepest first (a dummy sorts by its first child); returns
    the sorted roots."""
    order = yield from _preorder(roots)
    for n, c in enumerate(reversed(order)):
        if not n % STEP:
            yield
        if len(c.children) > 1:
            c.children = yield from sort_steps(c.children, key=_date)
    return (yield from sort_steps(roots, key=_date))


def _subject_of(c: _Container) -> tuple[str, bool]:
    if c.ident:
        return c.subject, c.is_reply
    first = c.children[0]
    return first.subject, first.is_reply


def _group_subjects(roots: list[_Container]) -> Generator[None, None, list[_Container]]:
    subjects: dict[str, _Container] = {}
    for n, c in enumerate(roots):
        if not n % STEP:
            yield
        subj, reply = _subject_of(c)
        if not subj:
            continue
        old = subjects.get(subj)
        if old is None or (old.ident and not c.ident) or (_subject_of(old)[1] and not reply):
            subjects[subj] = c
    out: list[_Container] = []
    where: dict[_Container, int] = {}  # position in `out`: a lookup, not a scan of the list
    for n, c in enumerate(roots):
        if not n % STEP:
            yield
        subj, reply = _subject_of(c)
        target = subjects.get(subj) if subj else None
        if target is None or target is c:
            where[c] = len(out)
            out.append(c)
            continue
        if target.ident == 0 and c.ident == 0:
            for child in list(c.children):
                target.link(child)
        elif target.ident == 0 or (_subject_of(target)[1] is False and reply):
            target.link(c)
        else:
            dummy = _Container()
            idx = where.pop(target, None)
            dummy.link(target)
            dummy.link(c)
            subjects[subj] = dummy
            if idx is not None:
                out[idx] = dummy
                where[dummy] = idx
            else:
                where[dummy] = len(out)
                out.append(dummy)
    return out


def _dismantle(containers: list[_Container]) -> Generator[None, None, None]:
    for n, c in enumerate(containers):
        if not n % STEP:
            yield
        c.parent = None
        c.children = []


def _to_nodes(roots: list[_Container]) -> Generator[None, None, list[Node]]:
    top: list[Node] = []
    stack: list[tuple[_Container, list[Node]]] = [(c, top) for c in reversed(roots)]
    n = 0
    while stack:
        n += 1
        if not n % STEP:
            yield
        c, siblings = stack.pop()
        node: Node = (c.ident, [])
        siblings.append(node)
        stack.extend((ch, node[1]) for ch in reversed(c.children))
    return top
