"""IMAP BODY[section] lookup over the scanned tree (RFC 3501 §6.4.5, RFC 9051 §6.4.5).

Part numbers follow Dovecot's imap_msgpart_find(): a non-multipart entity has only part 1 (itself);
after a message/rfc822 part, further numbers continue inside the encapsulated message.
"""

from __future__ import annotations

from mailcove.message.model import MessageInfo, Part

__all__ = ["SectionNotFound", "find_part", "find_section"]


class SectionNotFound(LookupError):
    """The section names a part the message does not have (IMAP answers with an empty string)."""


def find_part(root: Part, path: tuple[int, ...] | list[int]) -> Part | None:
    part: Part | None = root
    for idx, num in enumerate(path):
        if part is None:
            return None
        more = idx < len(path) - 1
        if part.type == "multipart":
            part = part.parts[num - 1] if 1 <= num <= len(part.parts) else None
        elif num != 1 or (more and part.message is None):
            return None
        if part is not None and more and part.message is not None:
            part = part.message
    return part


def _split(spec: str) -> tuple[tuple[int, ...], str]:
    nums: list[int] = []
    rest = spec
    while rest:
        head, dot, tail = rest.partition(".")
        if not head.isdigit() or not head.isascii():
            break
        n = int(head)
        if n == 0:
            raise SectionNotFound(spec)
        nums.append(n)
        rest = tail
        if not dot:
            break
    return tuple(nums), rest.upper()


def find_section(info: MessageInfo, spec: str) -> tuple[int, int]:
    """Byte range ``(start, end)`` for a section spec such as ``""``, ``"HEADER"``, ``"1.2"``,
    ``"1.2.MIME"``, ``"2.HEADER"``, ``"2.TEXT"`` or ``"2.HEADER.FIELDS (...)"`` (for the
    HEADER.FIELDS forms the range is the whole header; filtering the fields is IMAP's job)."""
    nums, sub = _split(spec.strip())
    kind = sub.split(" ", 1)[0].split("(", 1)[0]
    if not nums:
        root = info.root
        if kind == "":
            return 0, info.size
        if kind.startswith("HEADER"):
            return root.header_start, root.body_start
        if kind == "TEXT":
            return root.body_start, root.body_end
        raise SectionNotFound(spec)
    part = find_part(info.root, nums)
    if part is None:
        raise SectionNotFound(spec)
    if kind == "":
        return part.body_start, part.body_end
    if kind == "MIME":
        if part is info.root:
            # BODY[1.MIME] of a single-part message: Dovecot serves the message header.
            return part.header_start, part.body_start
        return part.header_start, part.body_start
    if part.message is None:
        raise SectionNotFound(spec)
    msg = part.message
    if kind.startswith("HEADER"):
        return msg.header_start, msg.body_start
    if kind == "TEXT":
        return msg.body_start, msg.body_end
    raise SectionNotFound(spec)
