"""SASL PLAIN (RFC 4616) for POP3 AUTH (RFC 5034).

Only PLAIN: the other mechanisms that matter (SCRAM) need what the directory does not keep
(salted SCRAM keys), and LOGIN is PLAIN with extra round trips. If a shared proto/sasl.py
appears, this module becomes an import of it.
"""

from __future__ import annotations

from dataclasses import dataclass

# RFC 4616 section 2: each of authzid, authcid and passwd is at most 255 octets; we allow more for
# the password (the directory refuses passwords over 4,096 bytes itself) but bound the whole.
MAX_PLAIN = 8192


class SaslError(ValueError):
    """The client's SASL message is malformed; the text is safe to send."""


@dataclass(frozen=True, slots=True)
class PlainCredentials:
    authzid: str
    authcid: str
    password: str


def parse_plain(data: bytes) -> PlainCredentials:
    """authzid NUL authcid NUL passwd, each UTF-8; authcid and passwd must not be empty."""
    if len(data) > MAX_PLAIN:
        raise SaslError("PLAIN message too long")
    parts = data.split(b"\x00")
    if len(parts) != 3:
        raise SaslError("PLAIN message must be authzid NUL authcid NUL password")
    try:
        authzid, authcid, password = (p.decode("utf-8") for p in parts)
    except UnicodeDecodeError:
        raise SaslError("PLAIN message is not UTF-8") from None
    if not authcid or not password:
        raise SaslError("PLAIN message lacks a user name or password")
    return PlainCredentials(authzid, authcid, password)


def plain_message(authcid: str, password: str, authzid: str = "") -> bytes:
    """What a client sends (tests, the bench client)."""
    return f"{authzid}\x00{authcid}\x00{password}".encode()
