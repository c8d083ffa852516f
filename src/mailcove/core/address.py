"""Mail addresses as values.

Only the canonical `local@domain` form lives here. SMTP path syntax (source routes, quoting on the
wire) is parsed by the protocol cores, which then build an Address.
"""

from __future__ import annotations

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
    if d.startswith("[") and d.endswith("]"):
        return d  # address literal, checked by whoever routes it
    for label in d.split("."):
        if not label or len(label) > 63 or label.startswith("-") or label.endswith("-"):
            raise AddressError(f"bad domain: {domain!r}")
        if not all(c.isalnum() or c in "-_" for c in label):
            raise AddressError(f"bad domain: {domain!r}")
    return d
