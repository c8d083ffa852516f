"""Flags are stored per message as one text value: the flags sorted and space-separated.

SQLite keeps flag sets in a table and messages carry the set's id; with several nodes inserting
new sets concurrently that table would need its own conflict handling and per-node caches that
only learn an id after the inserting transaction commits. A short text per row avoids both: the
parse is cached per distinct string, and a mailbox has few distinct flag strings, so loading a
100,000-row map decodes each string once and looks the rest up in a dict."""

from __future__ import annotations

from collections.abc import Iterable

_MAX_CACHED = 20_000


def flags_text(flags: Iterable[str]) -> str:
    return " ".join(sorted(set(flags)))


class FlagCache:
    def __init__(self) -> None:
        self._sets: dict[str, frozenset[str]] = {"": frozenset()}

    def get(self, text: str) -> frozenset[str]:
        flags = self._sets.get(text)
        if flags is None:
            flags = frozenset(text.split())
            if len(self._sets) >= _MAX_CACHED:
                # Keywords are client-chosen: a client inventing thousands must not grow memory.
                self._sets = {"": frozenset()}
            self._sets[text] = flags
        return flags

    def table(self, texts: Iterable[str]) -> list[frozenset[str]]:
        get = self._sets.get
        out = []
        for t in texts:
            f = get(t)
            out.append(f if f is not None else self.get(t))
        return out
