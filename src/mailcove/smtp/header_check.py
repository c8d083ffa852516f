"""The header of a message a logged-in user submits, read strictly enough that the From:
ownership check cannot be walked around (issue 13, finding 7).

Every reader downstream (our IMAP ENVELOPE, the recipient's MUA, another MTA) must see no
originator field that this check did not see. So the header is split at every LF (the most
lines any reader could find), every line must be a field (`name:` with a printable-ASCII name,
RFC 5322 section 3.6.8) or a continuation of one, and every From:, Sender:, Resent-From: and
Resent-Sender: is collected, not only the first. A header with a NUL or a bare CR, more than one
From: or Sender:, or longer than the scan limit is refused rather than guessed at."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailcove.message.addresses import parse_address_list
from mailcove.message.headers import unfold

_FIELD = re.compile(rb"([!-9;-~]+)[ \t]*:")
# Fields that name who wrote or sent the message; a submitting user may only name themselves.
ORIGINATOR_FIELDS = frozenset({"from", "sender", "resent-from", "resent-sender"})
_ONCE = frozenset({"from", "sender"})  # RFC 5322 section 3.6: at most one of each


@dataclass(slots=True)
class HeaderCheck:
    """`error` is why the header is refused (None: well-formed); `addresses` are the addresses
    every originator field names, each with the field it came from."""

    error: str | None = None
    addresses: list[tuple[str, str]] = field(default_factory=list)


def check_originators(header: bytes) -> HeaderCheck:
    """`header`: the header block without the blank line that ends it."""
    if b"\x00" in header:
        return HeaderCheck("NUL in the header")
    if re.search(rb"\r(?!\n)", header):
        return HeaderCheck("bare CR in the header")
    lines = header.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    fields: list[tuple[str, bytearray]] = []
    for n, raw in enumerate(lines):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if line[:1] in (b" ", b"\t"):
            if not fields:
                return HeaderCheck("the header starts with a continuation line")
            fields[-1][1].extend(b"\n" + line)
            continue
        m = _FIELD.match(line)
        if m is None:
            return HeaderCheck(f"header line {n + 1} is not a field")
        fields.append((m.group(1).decode("ascii").lower(), bytearray(line[m.end() :])))
    out = HeaderCheck()
    seen: dict[str, int] = {}
    for name, value in fields:
        if name not in ORIGINATOR_FIELDS:
            continue
        seen[name] = seen.get(name, 0) + 1
        if name in _ONCE and seen[name] > 1:
            return HeaderCheck(f"more than one {name.title()}: field")
        text = unfold(bytes(value)).decode("utf-8", "surrogateescape")
        found = [f"{a.mailbox}@{a.host}" for a in parse_address_list(text) if a.mailbox is not None and a.host]
        if not found and "@" in text:
            return HeaderCheck(f"unreadable {name.title()}: field")
        out.addresses.extend((name, addr) for addr in found)
    return out
