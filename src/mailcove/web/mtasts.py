"""MTA-STS (RFC 8461): the policy served at https://mta-sts.DOMAIN/.well-known/mta-sts.txt and
the id published in `_mta-sts.DOMAIN TXT "v=STSv1; id=..."`.

The id is derived from the policy text, so it changes exactly when the policy does (RFC 8461
section 3.1 asks for a new id on every change) and `mailcove dns`, `mailcove check` and the
server agree on it without storing anything."""

from __future__ import annotations

import hashlib

from mailcove.config import Settings


def mx_hosts(settings: Settings) -> list[str]:
    names = [settings.hostname.rstrip(".").lower()]
    if settings.web.public_hostname:
        names.append(settings.web.public_hostname.rstrip(".").lower())
    return list(dict.fromkeys(names))


def policy_text(settings: Settings) -> str:
    lines = ["version: STSv1", f"mode: {settings.web.mta_sts_mode}"]
    lines += [f"mx: {host}" for host in mx_hosts(settings)]
    lines.append(f"max_age: {settings.web.mta_sts_max_age}")
    # RFC 8461 section 3.2: lines end with CRLF (LF is accepted too; CRLF is the safe choice).
    return "\r\n".join(lines) + "\r\n"


def policy_id(settings: Settings) -> str:
    # 1-32 alphanumerics (RFC 8461 section 3.1); 20 hex digits of SHA-256 never collide by accident.
    return hashlib.sha256(policy_text(settings).encode()).hexdigest()[:20]
