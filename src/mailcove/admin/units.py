"""Sizes as administrators type them: 500K, 100M, 2G (powers of 1024, like `du -h`)."""

from __future__ import annotations

import re

from mailcove.directory.errors import DirectoryError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.I)
_FACTORS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


class BadSize(DirectoryError):
    """The size is not a number with an optional K, M, G or T suffix."""

    code = 501
    enhanced = "5.5.4"


def parse_size(text: str | int) -> int:
    if isinstance(text, int):
        if text < 0:
            raise BadSize(f"a size cannot be negative: {text}")
        return text
    m = _SIZE.match(text)
    if not m:
        raise BadSize(f"bad size {text!r}: expected a number of bytes with an optional K, M, G or T suffix")
    return int(float(m[1]) * _FACTORS[m[2].upper()])


def format_size(n: int) -> str:
    for unit in ("", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "" or n == int(n) else f"{n:.1f}{unit}"
        n = n / 1024  # type: ignore[assignment]
    return str(n)
