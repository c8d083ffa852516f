"""Delivery status notifications (RFC 3464): multipart/report; report-type=delivery-status.

Built by hand rather than with the email package: the three parts have a fixed shape, the
returned message must stay byte-exact (message/rfc822 is never re-encoded), and the per-recipient
fields need RFC 3464's exact names."""

from __future__ import annotations

import email.utils
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from mailcove.store.api import OutboundEnvelope

MAX_RETURNED = 1024 * 1024  # larger originals come back as headers only


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    address: str
    orcpt: str | None
    action: str  # "failed" | "delayed" | "relayed" | "delivered"
    status: str  # "5.1.1"
    diagnostic: str = ""  # the remote reply, "550 5.1.1 no such user"
    remote_mta: str = ""


def wants(notify: tuple[str, ...], action: str, sender: str) -> bool:
    """RFC 3461 4.1: NEVER, or a NOTIFY list without this kind, means no report. Without NOTIFY,
    failures and delays are reported, success is not. A null sender never gets one."""
    if not sender:
        return False
    n = {x.upper() for x in notify}
    if "NEVER" in n:
        return False
    kind = {"failed": "FAILURE", "delayed": "DELAY", "relayed": "SUCCESS", "delivered": "SUCCESS"}[action]
    if not n:
        return kind in ("FAILURE", "DELAY")
    return kind in n


def header_part(message: bytes) -> bytes:
    end = message.find(b"\r\n\r\n")
    return message if end < 0 else message[: end + 2]


def build(
    *,
    reporting_mta: str,
    postmaster: str,
    envelope: OutboundEnvelope,
    arrival: float,
    recipients: Sequence[RecipientStatus],
    original: bytes,
    now: float,
    retry_until: float | None = None,
) -> bytes:
    boundary = f"mailcove-dsn-{secrets.token_hex(12)}"
    actions = {r.action for r in recipients}
    if "failed" in actions:
        subject, intro = "Undelivered Mail Returned to Sender", (
            "Your message could not be delivered to one or more recipients. It is attached below.")
    elif "delayed" in actions:
        subject, intro = "Delayed Mail (still being retried)", (
            "Your message has not been delivered yet. Delivery will be tried again; you do not need to "
            "send it again.")
    else:
        subject, intro = "Successful Mail Delivery Report", (
            "Your message was passed on to a server that does not send delivery notifications itself.")
    lines = [intro, ""]
    for r in recipients:
        lines.append(f"<{r.address}>: {r.action}" + (f": {r.diagnostic}" if r.diagnostic else ""))
    human = "\r\n".join(lines) + "\r\n"

    status = [f"Reporting-MTA: dns; {reporting_mta}"]
    if envelope.envid:
        status.append(f"Original-Envelope-Id: {_one_line(envelope.envid)}")
    status.append(f"Arrival-Date: {email.utils.formatdate(arrival)}")
    status.append("")
    for r in recipients:
        if r.orcpt:
            status.append(f"Original-Recipient: {_one_line(r.orcpt)}")
        status.append(f"Final-Recipient: rfc822; {r.address}")
        status.append(f"Action: {r.action}")
        status.append(f"Status: {r.status}")
        if r.remote_mta:
            status.append(f"Remote-MTA: dns; {r.remote_mta}")
        if r.diagnostic:
            status.append(f"Diagnostic-Code: smtp; {_one_line(r.diagnostic)}")
        status.append(f"Last-Attempt-Date: {email.utils.formatdate(now)}")
        if r.action == "delayed" and retry_until is not None:
            status.append(f"Will-Retry-Until: {email.utils.formatdate(retry_until)}")
        status.append("")
    delivery_status = "\r\n".join(status)

    full = (envelope.ret or "FULL").upper() != "HDRS" and len(original) <= MAX_RETURNED
    if full:
        third_type, third = "message/rfc822", original if original.endswith(b"\r\n") else original + b"\r\n"
    else:
        third_type, third = "text/rfc822-headers", header_part(original)

    head = (
        f"From: Mail Delivery System <{postmaster}>\r\n"
        f"To: <{envelope.sender}>\r\n"
        f"Subject: {subject}\r\n"
        f"Date: {email.utils.formatdate(now, localtime=True)}\r\n"
        f"Message-ID: <{secrets.token_hex(12)}@{reporting_mta}>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="{boundary}"\r\n'
        "\r\n"
        "This is a MIME-encapsulated message.\r\n"
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Description: Notification\r\n"
        "\r\n"
        f"{human}"
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/delivery-status\r\n"
        "Content-Description: Delivery report\r\n"
        "\r\n"
        f"{delivery_status}\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: {third_type}\r\n"
        "Content-Description: Undelivered message\r\n"
        "\r\n"
    ).encode("utf-8", "replace")
    return head + third + f"\r\n--{boundary}--\r\n".encode()


def _one_line(text: str) -> str:
    # str.split() splits at CR, LF and the other whitespace; NUL and the other controls go too,
    # so a value stored before the SMTP parser refused them cannot add a field to the report.
    return " ".join("".join(c if c >= " " and c != "\x7f" else " " for c in text).split())[:900]
