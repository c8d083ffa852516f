"""SORT (RFC 5256 section 3) and SORT=DISPLAY (RFC 5957) over the scanned MessageInfo.

Every key is computed from what was parsed at delivery (no message is read). Strings compare
with i;ascii-casemap, which upper-cases a-z only: comparing the UTF-8 bytes after `bytes.upper()`
is exactly that (bytes.upper touches ASCII letters only). Equal keys keep sequence order
(section 3: "sorted in the order in which they appear in the mailbox"), also under REVERSE.

The session computes each message's key values (`key_values`) as its metadata is read, so the
MessageInfo objects of 100,000 messages never sit in memory together, then sorts with
`order_steps`, a generator driven by `cooperative.drive` that yields every few milliseconds
(issue 13's fairness rule).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

from mailcove.core.cooperative import sort_steps
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


def distinct_keys(criteria: Sequence[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """The criteria with every key after its first occurrence dropped: a key already given
    decides every tie it could break again, in either direction (a command of 13,000 keys sorts
    at most 9 times)."""
    first: dict[str, bool] = {}
    for key, reverse in criteria:
        first.setdefault(key, reverse)
    return list(first.items())


def key_values(meta: MessageMeta, criteria: Sequence[tuple[str, bool]]) -> tuple[Any, ...]:
    """One message's values for `criteria` (as distinct_keys gives them), in order."""
    return tuple(_KEYS[key](meta) for key, _ in criteria)


def order_steps(items: Sequence[tuple[int, tuple[Any, ...]]],
                criteria: Sequence[tuple[str, bool]]) -> Generator[None, None, list[int]]:
    """`items` are (sequence number, key_values) in sequence order; `criteria` the distinct
    (key, reverse) pairs in priority order. Returns the sequence numbers sorted.

    The sort is stable, so sorting by the least significant key first and the most significant
    last gives the combined order, and ties keep sequence order (`reverse=True` keeps sorting
    stable too)."""
    order = list(range(len(items)))
    for pos in reversed(range(len(criteria))):
        order = yield from sort_steps(order, key=lambda i, pos=pos: items[i][1][pos], reverse=criteria[pos][1])
    return [items[i][0] for i in order]
