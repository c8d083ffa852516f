"""Sender Rewriting Scheme (Shevek's SRS0 form, as postsrsd and Exim use): mail we pass on for a
sender of another domain (an alias forwarding off-site, a relaying client) leaves with an
envelope sender in our domain, so SPF at the final receiver checks us, and a bounce to it comes
back here to be reversed to the original sender.

    SRS0=HHHH=TT=example.org=alice@mx.our.domain

HHHH: the first 4 base64 characters of HMAC-SHA1(secret, TT + domain + local), case-folded;
TT: the day number modulo 1024 in base32, so addresses expire (21 days here)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
MAX_AGE_DAYS = 21


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
    mac = hmac.new(secret, (stamp + domain + local).lower().encode("utf-8", "surrogateescape"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()[:4]


def forward(sender: str, srs_domain: str, secret: bytes, now: float | None = None) -> str:
    local, _, domain = sender.rpartition("@")
    if local.upper().startswith(("SRS0=", "SRS1=")):
        # already rewritten by someone: SRS1 would keep the chain; sending it on as-is is what
        # most forwarders do when the first hop was ours or a known one
        return sender
    stamp = _stamp(time.time() if now is None else now)
    return f"SRS0={_hash(secret, stamp, domain, local)}={stamp}={domain}={local}@{srs_domain}"


def reverse(address: str, secret: bytes, now: float | None = None) -> str | None:
    """The original sender of an SRS0 address we made, or None (not ours, forged, expired)."""
    local, _, _domain = address.rpartition("@")
    if not local.upper().startswith("SRS0="):
        return None
    parts = local[5:].split("=", 3)
    if len(parts) != 4:
        return None
    h, stamp, odomain, olocal = parts
    stamp_u = stamp.upper()
    if len(stamp_u) != 2 or any(c not in _B32 for c in stamp_u):
        return None
    if not hmac.compare_digest(h.lower(), _hash(secret, stamp_u, odomain, olocal).lower()):
        return None
    then = (_B32.index(stamp_u[0]) << 5) | _B32.index(stamp_u[1])
    age = (_day(time.time() if now is None else now) - then) % 1024
    if age > MAX_AGE_DAYS:
        return None
    return f"{olocal}@{odomain}"
