"""Mailbox name rules shared by every backend.

Names are Unicode strings with "/" as the one hierarchy separator. INBOX is case-insensitive
(RFC 9051 section 5.1); every other name is case-sensitive. Protocol layers translate their wire
forms (modified UTF-7 for IMAP4rev1) before calling the store."""

from __future__ import annotations

from mailcove.core.errors import BadMailboxName
from mailcove.store.api import SEPARATOR

MAX_NAME_LENGTH = 1000
MAX_DEPTH = 32


def normalize_name(name: str) -> str:
    """Return the canonical form (INBOX upper-cased) or raise BadMailboxName."""
    if not name:
        raise BadMailboxName("empty mailbox name")
    if len(name) > MAX_NAME_LENGTH:
        raise BadMailboxName("mailbox name too long")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise BadMailboxName("mailbox name contains control characters")
    if "*" in name or "%" in name:
        # The IMAP LIST wildcards (RFC 9051 6.3.9): a mailbox so named could never be listed
        # on its own, and `LIST "" "*"` would match more than was asked. Dovecot refuses them too.
        raise BadMailboxName("mailbox names may not contain the LIST wildcards * and %")
    if name.startswith(SEPARATOR) or name.endswith(SEPARATOR):
        raise BadMailboxName("mailbox name starts or ends with the hierarchy separator")
    parts = name.split(SEPARATOR)
    if len(parts) > MAX_DEPTH:
        raise BadMailboxName("mailbox hierarchy too deep")
    for part in parts:
        if not part or part in (".", ".."):
            raise BadMailboxName(f"bad mailbox name component {part!r}")
        if part != part.strip():
            raise BadMailboxName("mailbox name components may not start or end with spaces")
    if parts[0].upper() == "INBOX":
        parts[0] = "INBOX"
    return SEPARATOR.join(parts)


def parents(name: str) -> list[str]:
    """The superior names of `name`, outermost first: "a/b/c" -> ["a", "a/b"]."""
    parts = name.split(SEPARATOR)
    return [SEPARATOR.join(parts[:i]) for i in range(1, len(parts))]


def is_inferior(name: str, of: str) -> bool:
    return name.startswith(of + SEPARATOR)
