"""The one encoding helper the session needs beyond proto.imap.responses: a flag list in a stable
(sorted) order, so the per-session cache of encoded flag lists hits for equal sets."""

from __future__ import annotations

from collections.abc import Iterable


def flag_list(flags: Iterable[str]) -> bytes:
    return b"(" + " ".join(sorted(flags)).encode("utf-8", "surrogateescape") + b")"
