"""ID (RFC 2971): ``ID NIL`` or ``ID ("name" "mutt" ...)``."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import ParseError, Parser

__all__ = ["Id", "parse"]

MAX_PAIRS = 30  # RFC 2971 §3.3: at most 30 field-value pairs
MAX_FIELD = 30
MAX_VALUE = 1024


@command
class Id(Command):
    """``params`` is None for ``ID NIL``; values may be None (NIL)."""

    name: ClassVar[str] = "ID"
    params: tuple[tuple[str, str | None], ...] | None


def parse(p: Parser, tag: str, uid: bool) -> Id:
    p.sp()
    if p.accept(b"NIL"):
        p.end()
        return Id(tag=tag, params=None)
    p.open()
    pairs: list[tuple[str, str | None]] = []
    if not p.accept(b")"):
        while True:
            key = p.string()
            p.sp()
            val = p.nstring()
            if len(key) > MAX_FIELD or (val is not None and len(val) > MAX_VALUE):
                raise ParseError("ID field or value too long")
            pairs.append((key.decode("utf-8", "replace"), None if val is None else val.decode("utf-8", "replace")))
            if len(pairs) > MAX_PAIRS:
                raise ParseError("Too many ID fields")
            if not p.maybe_sp():
                break
        p.close()
    else:
        p.depth -= 1
    p.end()
    return Id(tag=tag, params=tuple(pairs))
