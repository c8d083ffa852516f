"""UIDL values: our own form, the UIDL kept from an old server, and the X-UIDL header.

Our UIDL for a message is "<UIDVALIDITY>.<UID>" of the INBOX it is in: unique within a
maildrop, never reused (UIDs are not), and the same in every session and after restarts.

Mail imported from another POP3 server keeps the UIDL that server gave it, so clients that leave
mail on the server do not download everything again: the importer stores it with the message
(ImportMessage.pop3_uidl; importers/dovecot_uidl.py decides which). A message may also carry an
`X-UIDL:` header (qpopper, UW, Dovecot's `pop3_reuse_xuidl`); `find_xuidl` reads it. A value
from either is used only if it is a valid UIDL (RFC 1939 section 7: 1-70 characters
0x21-0x7E) and cannot be mistaken for one of ours (it is not digits.digits, unless it is the
message's own); duplicates are settled by the caller (the lowest UID keeps the value).
"""

from __future__ import annotations

import re

from mailcove.proto.pop3.commands import MAX_UIDL

_OWN_FORM = re.compile(rb"\d+\.\d+")
_FIELD = re.compile(rb"(?:^|\n)x-uidl:[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.IGNORECASE)


def own_uidl(uidvalidity: int, uid: int) -> bytes:
    return b"%d.%d" % (uidvalidity, uid)


def valid_uidl(value: bytes) -> bool:
    return 0 < len(value) <= MAX_UIDL and all(0x21 <= b <= 0x7E for b in value)


def valid_foreign_uidl(value: bytes) -> bool:
    return valid_uidl(value) and _OWN_FORM.fullmatch(value) is None


def usable_kept_uidl(value: bytes, own: bytes) -> bool:
    """A kept UIDL may be the message's own form (an old server's `%v.%u`), never another's."""
    return value == own or valid_foreign_uidl(value)


def find_xuidl(header: bytes) -> bytes | None:
    """The value of the first X-UIDL field of a header block, if it is a usable UIDL.

    `header` is the message's header block (it may include the blank line and need not be
    complete: a field cut off by the end of `header` is ignored)."""
    end = header.find(b"\r\n\r\n")
    if end < 0:
        end = header.find(b"\n\n")
    if end >= 0:
        header = header[: end + 1]
    m = _FIELD.search(header)
    if m is None:
        return None
    if m.end() >= len(header):
        return None  # the field may continue past what we were given
    value = re.sub(rb"\r?\n[ \t]+", b" ", m.group(1)).strip(b" \t")
    return value if valid_foreign_uidl(value) else None
