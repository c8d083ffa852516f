"""Flags are stored as one space-separated text per message. Distinct flag sets are few, so the
parsed frozensets are cached: loading a 100,000-message UID/flags map then costs one dict lookup
per row instead of a split and a frozenset build."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache


@lru_cache(maxsize=4096)
def parse_flags(text: str) -> frozenset[str]:
    return frozenset(text.split()) if text else frozenset()


def flags_text(flags: Iterable[str]) -> str:
    return " ".join(sorted(flags))
