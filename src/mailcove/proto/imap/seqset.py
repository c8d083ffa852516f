"""IMAP sequence sets (RFC 9051 §9 ``sequence-set``): ``1:*,5,7:9`` and ``$`` (SEARCHRES, RFC 5182).

A set is kept as the ranges the client wrote; ``*`` is stored as 0 ("the largest number in use") and
only gets a value when the session resolves the set against its mailbox. Resolution merges and
sorts, so the session can walk ranges instead of expanding ``1:*`` into 100,000 integers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

__all__ = ["SeqSet", "SeqSetError", "compact", "ordered_set"]

STAR = 0  # stands for "*" inside a range
_MAX = 0xFFFFFFFF  # nz-number / uniqueid are 32-bit


class SeqSetError(ValueError):
    """The text is not a sequence set."""


@dataclass(frozen=True, slots=True)
class SeqSet:
    """A parsed sequence set. ``ranges`` are (low, high) pairs as written, with 0 for ``*``;
    ``saved`` is True for ``$`` (the session substitutes its saved SEARCH result)."""

    ranges: tuple[tuple[int, int], ...] = ()
    saved: bool = False

    @classmethod
    def parse(cls, text: str | bytes) -> SeqSet:
        if isinstance(text, bytes):
            text = text.decode("ascii", "replace")
        if text == "$":
            return cls((), True)
        if not text:
            raise SeqSetError("empty sequence set")
        out: list[tuple[int, int]] = []
        for item in text.split(","):
            lo, sep, hi = item.partition(":")
            a = _num(lo)
            b = _num(hi) if sep else a
            out.append((a, b))
        return cls(tuple(out))

    @classmethod
    def from_ints(cls, numbers: Iterable[int]) -> SeqSet:
        """The compact set holding exactly `numbers` (any order, duplicates allowed)."""
        return cls(tuple(_merge((n, n) for n in numbers)))

    @property
    def has_star(self) -> bool:
        return any(a == STAR or b == STAR for a, b in self.ranges)

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Sorted, merged, inclusive ranges with ``*`` = `largest`. Ranges are NOT clipped to
        `largest` (for UIDs, 5:7 is valid even above the largest UID); use `clip` for seq numbers.
        In an empty mailbox (`largest` 0) every range that uses ``*`` is empty."""
        pairs: list[tuple[int, int]] = []
        for a, b in self.ranges:
            if largest <= 0 and (a == STAR or b == STAR):
                continue
            a = largest if a == STAR else a
            b = largest if b == STAR else b
            if a > b:
                a, b = b, a
            if a <= 0:
                if b <= 0:
                    continue
                a = 1
            pairs.append((a, b))
        return _merge(pairs)

    def clip(self, largest: int) -> list[tuple[int, int]]:
        """`resolve`, then limited to 1..largest (message sequence numbers)."""
        out = []
        for a, b in self.resolve(largest):
            if a > largest:
                break
            out.append((a, min(b, largest)))
        return out

    def contains(self, n: int, largest: int) -> bool:
        for a, b in self.ranges:
            a = largest if a == STAR else a
            b = largest if b == STAR else b
            if a > b:
                a, b = b, a
            if a <= n <= b:
                return True
        return False

    def iter(self, largest: int) -> Iterator[int]:
        """Every number of `clip(largest)`, ascending."""
        for a, b in self.clip(largest):
            yield from range(a, b + 1)

    def __str__(self) -> str:
        if self.saved:
            return "$"
        return ",".join(_fmt(a) if a == b else f"{_fmt(a)}:{_fmt(b)}" for a, b in self.ranges)


def compact(numbers: Iterable[int]) -> str:
    """``1:3,7`` for [1, 2, 3, 7]: the form used in COPYUID, VANISHED, ESEARCH ALL."""
    return ",".join(str(a) if a == b else f"{a}:{b}" for a, b in _merge((n, n) for n in numbers))


def _num(s: str) -> int:
    if s == "*":
        return STAR
    # nz-number = digit-nz *DIGIT: no sign, no leading zero, no blanks (int() would accept them)
    if not s or not s.isascii() or not s.isdigit() or s[0] == "0" or len(s) > 10:
        raise SeqSetError(f"bad sequence number {s!r}")
    n = int(s)
    if n > _MAX:
        raise SeqSetError(f"sequence number out of range {s!r}")
    return n


def _fmt(n: int) -> str:
    return "*" if n == STAR else str(n)


def _merge(pairs: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(pairs):
        if out and a <= out[-1][1] + 1:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def ordered_set(numbers: Sequence[int]) -> str:
    """A sequence-set that keeps the given order (ESORT ALL, RFC 5267 3.2): only a run that
    ascends by one is written as a range, `[3, 4, 5, 1]` -> ``3:5,1``; nothing is re-ordered
    or merged. Empty input gives ""."""
    out: list[str] = []
    i, n = 0, len(numbers)
    while i < n:
        j = i
        while j + 1 < n and numbers[j + 1] == numbers[j] + 1:
            j += 1
        out.append(str(numbers[i]) if i == j else f"{numbers[i]}:{numbers[j]}")
        i = j + 1
    return ",".join(out)
