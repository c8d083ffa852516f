"""Mail addresses as values.

Only the canonical `local@domain` form lives here. SMTP path syntax (source routes, quoting on the
wire) is parsed by the protocol cores, which then build an Address.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass


class AddressError(ValueError):
    """The text is not a usable mail address."""


_LOCAL_FORBIDDEN = set(" \t\r\n\x00<>(),;:\\[]\"")


@dataclass(frozen=True, slots=True)
class Address:
    local: str
    domain: str

    @classmethod
    def parse(cls, text: str) -> Address:
        text = text.strip()
        if text.startswith("<") and text.endswith(">"):
            text = text[1:-1]
        local, sep, domain = text.rpartition("@")
        if not sep or not local or not domain:
            raise AddressError(f"not an address of the form local@domain: {text!r}")
        if any(c in _LOCAL_FORBIDDEN for c in local) or len(local) > 64:
            raise AddressError(f"bad local part: {local!r}")
        return cls(local, normalize_domain(domain))

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def key(self) -> str:
        """Case-insensitive identity: RFC 5321 lets local parts be case-sensitive, but every
        deployed server (and the seed's Sendmail) treats them as case-insensitive."""
        return f"{self.local.lower()}@{self.domain}"


def normalize_domain(domain: str) -> str:
    """Lower-case, strip a trailing dot, and check the label syntax (IDNA-aware)."""
    d = domain.strip().rstrip(".").lower()
    if not d or len(d) > 253:
        raise AddressError(f"bad domain: {domain!r}")
    if d.startswith("[") or d.endswith("]"):
        check_address_literal(d)
        return d
    for label in d.split("."):
        if not label or len(label) > 63 or label.startswith("-") or label.endswith("-"):
            raise AddressError(f"bad domain: {domain!r}")
        if not all(c.isalnum() or c in "-_" for c in label):
            raise AddressError(f"bad domain: {domain!r}")
    return d


_SNUM_QUAD = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_LDH_TAG = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_DCONTENT = re.compile(r"[\x21-\x5a\x5e-\x7e]+")  # printable US-ASCII except [ \ ]


def check_address_literal(text: str) -> None:
    """RFC 5321 section 4.1.3 address-literal: `[IPv4]`, `[IPv6:addr]` or a
    General-address-literal `[tag:dcontent]`. Raises AddressError for anything else, so a
    "domain" such as `[a>b\x01]` never reaches the queue or a header."""
    if len(text) < 3 or not (text.startswith("[") and text.endswith("]")):
        raise AddressError(f"bad address literal: {text!r}")
    inner = text[1:-1]
    if _SNUM_QUAD.fullmatch(inner):
        if all(int(part) <= 255 for part in inner.split(".")):
            return
        raise AddressError(f"bad IPv4 address literal: {text!r}")
    tag, colon, content = inner.partition(":")
    if not colon or not _LDH_TAG.fullmatch(tag):
        raise AddressError(f"bad address literal (not IPv4, IPv6: or tag:content): {text!r}")
    if tag.lower() == "ipv6":
        if not content or not content.isascii() or not all(c in "0123456789abcdefABCDEF:." for c in content):
            raise AddressError(f"bad IPv6 address literal: {text!r}")
        try:
            ipaddress.IPv6Address(content)
        except ValueError:
            raise AddressError(f"bad IPv6 address literal: {text!r}") from None
        return
    if not _DCONTENT.fullmatch(content):
        raise AddressError(f"bad general address literal: {text!r}")
