"""8-bit to 7-bit downgrade for a next hop without 8BITMIME (RFC 6152 section 3): every leaf
part whose body has 8-bit bytes is re-encoded as quoted-printable.

Uses the email package's compat32 policy (byte-preserving for the parts left alone, ~40 us/KB),
and only for messages that need it, which are rare; docs/design/outbound.md."""

from __future__ import annotations

import email.generator
import email.parser
import email.policy
import io
import quopri


def has_8bit(data: bytes) -> bool:
    return any(b > 127 for b in data) if len(data) < 4096 else not data.isascii()


def to_7bit(message: bytes) -> bytes | None:
    """The message with 8-bit bodies as quoted-printable, or None if it cannot be converted
    (8-bit bytes in a header: that needs SMTPUTF8, RFC 6531)."""
    end = message.find(b"\r\n\r\n")
    head = message if end < 0 else message[:end]
    if not head.isascii():
        return None
    msg = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(message)
    for part in msg.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=False)
        raw = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else bytes(payload or b"")
        if raw.isascii():
            continue
        cte = (part.get("Content-Transfer-Encoding") or "").lower().strip()
        if cte in ("base64", "quoted-printable"):
            continue
        encoded = quopri.encodestring(raw.replace(b"\r\n", b"\n")).decode("ascii")
        del part["Content-Transfer-Encoding"]
        part["Content-Transfer-Encoding"] = "quoted-printable"
        part.set_payload(encoded)
    out = io.BytesIO()
    email.generator.BytesGenerator(out, mangle_from_=False, policy=email.policy.compat32.clone(linesep="\r\n")).flatten(
        msg
    )
    data = out.getvalue()
    return data if data.isascii() else None
