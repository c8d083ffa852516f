"""SORT (RFC 5256 section 3) and SORT=DISPLAY (RFC 5957) over the scanned MessageInfo.

Every key is computed from what was parsed at delivery (no message is read). Strings compare
with i;ascii-casemap, which upper-cases a-z only: comparing the UTF-8 bytes after `bytes.upper()`
is exactly that (bytes.upper touches ASCII letters only). Equal keys keep sequence order
(section 3: "sorted in the order in which they appear in the mailbox"), also under REVERSE.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mailcove.message import decode_header_value
from mailcove.message.model import Address
from mailcove.store.api import MessageMeta

SORT_KEYS = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"})


def _fold(s: str | None) -> bytes:
    return (s or "").encode("utf-8", "surrogateescape").upper()


def _first(addrs: tuple[Address, ...]) -> Address | None:
    """The first address of the header as ENVELOPE gives it (RFC 5256 section 3: "the first
    address"): a group's start marker when the header starts with a group, whose mailbox is
    the group name. Skipping to the group's first member would sort `Cc: team: x@y;` by "x"."""
    return addrs[0] if addrs else None


def _mailbox(addr: Address | None) -> bytes:
    return _fold(addr.mailbox if addr is not None else None)


def _display(addr: Address | None) -> bytes:
    """RFC 5957 section 3: the decoded display-name, or the addr-spec when there is none (a
    group: its name)."""
    if addr is None:
        return b""
    if addr.name:
        name = decode_header_value(addr.name).strip()
        if name:
            return _fold(name)
    return _fold(addr.addr_spec)


def sent_date(meta: MessageMeta) -> float:
    """RFC 5256: the Date header in UTC; the internal date when it is missing or unparsable."""
    d = meta.info.date
    return meta.internaldate if d is None else d


_KEYS: dict[str, Callable[[MessageMeta], Any]] = {
    "ARRIVAL": lambda m: m.internaldate,
    "CC": lambda m: _mailbox(_first(m.info.envelope.cc)),
    "DATE": sent_date,
    "FROM": lambda m: _mailbox(_first(m.info.envelope.from_)),
    "SIZE": lambda m: m.size,
    "SUBJECT": lambda m: _fold(m.info.base_subject),
    "TO": lambda m: _mailbox(_first(m.info.envelope.to)),
    "DISPLAYFROM": lambda m: _display(_first(m.info.envelope.from_)),
    "DISPLAYTO": lambda m: _display(_first(m.info.envelope.to)),
}


def sort_messages(items: Sequence[tuple[int, MessageMeta]], criteria: Sequence[tuple[str, bool]]) -> list[int]:
    """`items` are (sequence number, meta) in sequence order; `criteria` (key, reverse) pairs in
    priority order. Returns the sequence numbers sorted.

    Python's sort is stable, so sorting by the least significant key first and the most
    significant last gives the combined order, and ties keep sequence order (`reverse=True` keeps
    sorting stable too)."""
    order = list(items)
    # A key already given decides every tie it could break again, in either direction: only its
    # first occurrence counts (and a command of 13,000 keys sorts at most 9 times).
    first: dict[str, bool] = {}
    for key, reverse in criteria:
        first.setdefault(key, reverse)
    for key, reverse in reversed(list(first.items())):
        fn = _KEYS[key]
        order.sort(key=lambda it, fn=fn: fn(it[1]), reverse=reverse)
    return [seq for seq, _ in order]

