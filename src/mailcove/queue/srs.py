"""Sender Rewriting Scheme (Shevek's SRS0 form, as postsrsd and Exim use): mail we pass on for a
sender of another domain (an alias forwarding off-site, a relaying client) leaves with an
envelope sender in our domain, so SPF at the final receiver checks us, and a bounce to it comes
back here to be reversed to the original sender.

    SRS0=HHHHHHHH=TT=example.org=alice@mx.our.domain

HHHHHHHH: the first 40 bits of HMAC-SHA256(secret, TT + domain + local, lower-cased) in base32
(A-Z, 2-7). Base32 has one case, so an MTA that lower-cases local parts on the way back changes
nothing, and all 40 bits (about 10^12 values) are there to guess; the throttle on failed
guesses (smtp/session.py) leaves a guesser a few tries per five minutes.
TT: the day number modulo 1024 in base32, so addresses expire (MAX_AGE_DAYS).

Before issue 13 (finding 4) the hash was 4 base64 characters of HMAC-SHA1 compared without
case: about 2.1 million values, found in minutes by pipelined RCPTs. Such addresses are not
verified any more: accepting them, even for their last days, would keep that search space open,
and an IPv6 client rotating through /64s is not slowed enough by a per-client throttle. A bounce
to one of them is refused (550 5.1.1), as an expired address would have been a little later."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from enum import StrEnum
from pathlib import Path

_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
HASH_CHARS = 8  # base32: 40 bits
# Days an SRS address verifies. A bounce comes within the sender's queue lifetime: 5 days for
# Postfix, Sendmail, Exim (4) and us ([queue] give_up_hours), 7 for qmail. Ten covers those with
# room for a late relay; anything longer only keeps an address someone has seen (in a forwarded
# message's Return-Path) usable for longer. Was 21 (libsrs2's default) before issue 13.
MAX_AGE_DAYS = 10


class Check(StrEnum):
    """Why an SRS0 address was (not) reversed. Only FORGED depends on the secret: it is the answer
    a guesser learns from, so only it counts as a failure in the throttle."""

    OK = "ok"
    MALFORMED = "malformed"  # not our SRS0 layout (or the pre-issue-13 4-character hash)
    FORGED = "forged"  # the hash does not match
    EXPIRED = "expired"  # the hash matches, the day stamp is too old (or in the future)


def read_secret(path: Path) -> bytes | None:
    """The secret in `path`, or None when none was ever made (then no SRS address is ours)."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        return None


def load_secret(path: Path) -> bytes:
    """The secret in `path`, made (0600) on first use."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        value = secrets.token_hex(24).encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(value + b"\n")
        return value


def _day(now: float) -> int:
    return int(now // 86400) % 1024


def _stamp(now: float) -> str:
    d = _day(now)
    return _B32[d >> 5] + _B32[d & 31]


def _hash(secret: bytes, stamp: str, domain: str, local: str) -> str:
    mac = hmac.new(secret, (stamp + domain + local).lower().encode("utf-8", "surrogateescape"), hashlib.sha256)
    return base64.b32encode(mac.digest()[:5]).decode()  # 5 bytes: exactly 8 characters, no padding


def forward(sender: str, srs_domain: str, secret: bytes, now: float | None = None) -> str:
    local, _, domain = sender.rpartition("@")
    if local.upper().startswith(("SRS0=", "SRS1=")):
        # already rewritten by someone: SRS1 would keep the chain; sending it on as-is is what
        # most forwarders do when the first hop was ours or a known one
        return sender
    stamp = _stamp(time.time() if now is None else now)
    return f"SRS0={_hash(secret, stamp, domain, local)}={stamp}={domain}={local}@{srs_domain}"


def verify(address: str, secret: bytes, now: float | None = None) -> tuple[str | None, Check]:
    """The original sender of an SRS0 address we made (None unless OK), and the verdict."""
    local, _, _domain = address.rpartition("@")
    if not local.upper().startswith("SRS0="):
        return None, Check.MALFORMED
    parts = local[5:].split("=", 3)
    if len(parts) != 4:
        return None, Check.MALFORMED
    h, stamp, odomain, olocal = parts
    h_u, stamp_u = h.upper(), stamp.upper()
    if len(h_u) != HASH_CHARS or len(stamp_u) != 2 or any(c not in _B32 for c in h_u + stamp_u):
        return None, Check.MALFORMED
    if not odomain or not olocal:
        return None, Check.MALFORMED
    if not hmac.compare_digest(h_u, _hash(secret, stamp_u, odomain, olocal)):
        return None, Check.FORGED
    then = (_B32.index(stamp_u[0]) << 5) | _B32.index(stamp_u[1])
    age = (_day(time.time() if now is None else now) - then) % 1024
    if age > MAX_AGE_DAYS:
        return None, Check.EXPIRED
    return f"{olocal}@{odomain}", Check.OK


def reverse(address: str, secret: bytes, now: float | None = None) -> str | None:
    """The original sender of an SRS0 address we made, or None (not ours, forged, expired)."""
    return verify(address, secret, now)[0]
