"""LIST (RFC 9051 §6.3.9) with LIST-EXTENDED (RFC 5258), SPECIAL-USE (RFC 6154) and LIST-STATUS
(RFC 5819); LSUB (RFC 3501 §6.3.9)."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.commands.status import parse_status_items
from mailcove.proto.imap.parser import ParseError, Parser

__all__ = ["List", "Lsub", "parse", "parse_lsub"]

SELECTION = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
RETURN = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS", "MYRIGHTS"})
MAX_PATTERNS = 32


@command
class List(Command):
    """``extended`` is True when the client used any LIST-EXTENDED syntax (then the reply may
    carry extended data items and CHILDINFO). ``status_items`` is non-empty for RETURN (STATUS (...)).
    A pattern (or a reference) that cannot name any mailbox is left out of ``patterns``, so the
    LIST answers OK with nothing for it."""

    name: ClassVar[str] = "LIST"
    reference: str
    patterns: tuple[str, ...]
    selection: frozenset[str] = frozenset()
    return_opts: frozenset[str] = frozenset()
    status_items: tuple[str, ...] = ()
    extended: bool = False


@command
class Lsub(Command):
    """``pattern`` is None when the reference or pattern cannot name any mailbox (matches nothing)."""

    name: ClassVar[str] = "LSUB"
    reference: str
    pattern: str | None


def parse(p: Parser, tag: str, uid: bool) -> List:
    p.sp()
    extended = False
    selection: set[str] = set()
    if p.peek() == 0x28:
        extended = True
        p.open()
        if not p.accept(b")"):
            while True:
                opt = p.upper_atom()
                if opt not in SELECTION:
                    raise ParseError(f"Unknown LIST selection option {opt}")
                selection.add(opt)
                if not p.maybe_sp():
                    break
            p.close()
        else:
            p.depth -= 1
        if "RECURSIVEMATCH" in selection and selection <= {"RECURSIVEMATCH", "REMOTE"}:
            # RFC 5258 §3: RECURSIVEMATCH alone is an error
            raise ParseError("RECURSIVEMATCH needs another selection option")
        p.sp()
    reference = p.list_mailbox()
    p.sp()
    patterns: list[str | None] = []
    if p.peek() == 0x28:
        extended = True
        p.open()
        while True:
            patterns.append(p.list_mailbox())
            if len(patterns) > MAX_PATTERNS:
                raise ParseError("Too many LIST patterns")
            if not p.maybe_sp():
                break
        p.close()
    else:
        patterns.append(p.list_mailbox())
    ret: set[str] = set()
    status_items: tuple[str, ...] = ()
    if p.maybe_sp():
        extended = True
        p.expect(b"RETURN")
        p.sp()
        p.open()
        if not p.accept(b")"):
            while True:
                opt = p.upper_atom()
                if opt not in RETURN:
                    raise ParseError(f"Unknown LIST return option {opt}")
                ret.add(opt)
                if opt == "STATUS":
                    p.sp()
                    status_items = parse_status_items(p)
                if not p.maybe_sp():
                    break
            p.close()
        else:
            p.depth -= 1
    p.end()
    valid = () if reference is None else tuple(x for x in patterns if x is not None)
    return List(tag=tag, reference=reference or "", patterns=valid, selection=frozenset(selection),
                return_opts=frozenset(ret), status_items=status_items, extended=extended)


def parse_lsub(p: Parser, tag: str, uid: bool) -> Lsub:
    p.sp()
    reference = p.list_mailbox()
    p.sp()
    pattern = p.list_mailbox()
    p.end()
    return Lsub(tag=tag, reference=reference or "", pattern=None if reference is None else pattern)
