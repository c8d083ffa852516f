"""The syntax of an address the directory takes in: a user, an alias and its targets, the postmaster.

RFC 5321 section 4.1.2 (with RFC 6531's UTF-8): the local part is a Dot-string (atoms of atext
joined by single dots) or a Quoted-string, at most 64 octets; the domain follows the last and
only "@" outside quotes. `Address.parse` is lenient on purpose (it splits at the last "@" and
takes what a peer sends); here `a@@hamap.local`, `.a@`, `a..b@` and `a b@` are refused before
they become a mailbox. A quoted local part that names a Dot-string (`"a"`) is that mailbox; one
that needs its quotes (`"a b"`) is valid syntax but cannot be a mailbox or alias here, since
every other part of mailcove (logins, the queue, headers) works with Dot-strings, as RFC 5321
advises ("a mailbox ... SHOULD NOT be defined" to need quoting)."""

from __future__ import annotations

import re

from mailcove.core.address import Address, AddressError, normalize_domain
from mailcove.directory.errors import BadAddress

# atext (RFC 5322 3.2.3) plus UTF8-non-ascii (RFC 6531 3.3)
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]"
_DOT_STRING = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
# qtextSMTP and quoted-pairSMTP (RFC 5321 4.1.2), qtext with UTF8-non-ascii (RFC 6531 3.3)
_QUOTED = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[\x20-\x7e])*"'
_MAILBOX = re.compile(rf"({_DOT_STRING}|{_QUOTED})@([^@\"\s]+)")
_DOT_STRING_RE = re.compile(_DOT_STRING)
LOCAL_PART_MAX_OCTETS = 64  # RFC 5321 4.5.3.1.1


def parse_mailbox(text: str) -> Address:
    """`local@domain` checked by RFC 5321/6531, with the local part as a Dot-string; BadAddress
    (one line, naming the rule) otherwise. The domain's own checks are normalize_domain's."""
    t = text.strip()
    if t.startswith("<") and t.endswith(">"):
        t = t[1:-1]
    m = _MAILBOX.fullmatch(t)
    if m is None:
        raise BadAddress(f"bad address syntax: {text!r}: an address is a dot-atom such as a.b (or a quoted "
                         "string), then one @ and the domain (RFC 5321 4.1.2)")
    local, domain = m.group(1), m.group(2)
    if local.startswith('"'):
        unquoted = re.sub(r"\\(.)", r"\1", local[1:-1])
        if not _DOT_STRING_RE.fullmatch(unquoted):
            raise BadAddress(f"bad address syntax: {text!r}: a local part that needs quotes cannot be a mailbox here "
                             "(RFC 5321 4.1.2 advises against them); use a dot-atom such as a.b")
        local = unquoted
    if len(local.encode("utf-8")) > LOCAL_PART_MAX_OCTETS:
        raise BadAddress(f"bad address syntax: {text!r}: the local part is longer than {LOCAL_PART_MAX_OCTETS} octets "
                         "(RFC 5321 4.5.3.1.1)")
    try:
        return Address(local, normalize_domain(domain))
    except AddressError as exc:
        raise BadAddress(f"bad address syntax: {text!r}: {exc}") from None
