"""Checks of mail arriving from other servers: SPF, DKIM and DMARC, recorded in an
Authentication-Results field (RFC 8601), with any such field carrying our own authserv-id
removed first (RFC 8601 section 5: otherwise a sender could forge `dmarc=pass`).

The SMTP session makes one call at the end of DATA, with the message as received:

    outcome = await mailauth.check_inbound(checker, spool, ip=..., helo=..., mail_from=...)
    # outcome.results: the Authentication-Results field, for the trace the session builds;
    # outcome.header: the message's header without forged fields (a RewrittenHeader), or None;
    # outcome.junk: file into Junk; outcome.reject: (550, "5.7.1", text) for DMARC p=reject

The message is only read, never rewritten: what goes in front of it, and what stands for its
header, are values the store serves beside the body it keeps as received (store.api.MessagePrefix).

Checks never hold a message up indefinitely: all lookups share `[mailauth] timeout`, and what
does not finish in it is `temperror`."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailcove.dns import Resolver, make_resolver
from mailcove.mailauth import dkim as dkim_mod
from mailcove.mailauth import dmarc as dmarc_mod
from mailcove.mailauth import spf as spf_mod
from mailcove.mailauth.dkim import DkimResult
from mailcove.mailauth.dmarc import DmarcResult
from mailcove.mailauth.spf import SpfResult
from mailcove.message.headers import RewrittenHeader

if TYPE_CHECKING:
    from mailcove.config.settings import Settings
    from mailcove.store.spool import Spool

HEADER_MAX = 256 * 1024


@dataclass
class Verdict:
    spf: SpfResult
    dkim: list[DkimResult]
    dmarc: DmarcResult
    header: bytes
    junk: bool = False
    reject: tuple[int, str, str] | None = None


@dataclass
class InboundOutcome:
    results: bytes = b""  # the Authentication-Results field (CRLF-terminated), b"" when not checked
    header: RewrittenHeader | None = None  # the header without fields forged in our name
    junk: bool = False
    reject: tuple[int, str, str] | None = None
    verdict: Verdict | None = field(default=None, repr=False)


def header_end(message: bytes) -> int:
    """Offset of the body (after the blank line), or len(message)."""
    if message.startswith(b"\r\n"):
        return 2
    end = message.find(b"\r\n\r\n")
    return len(message) if end < 0 else end + 4


_FIELD = re.compile(rb"[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*")


def _authserv_id(value: bytes) -> bytes:
    v = re.sub(rb"\([^)]*\)", b"", value).strip()
    return v.split(b";", 1)[0].strip().split()[0].lower() if v.split(b";", 1)[0].strip() else b""


def remove_our_results(head: bytes, authserv_id: str) -> bytes:
    """The header block without Authentication-Results fields naming `authserv_id`."""
    ours = authserv_id.lower().encode()
    out = []
    for m in _FIELD.finditer(head):
        f = m.group(0)
        name, colon, value = f.partition(b":")
        if colon and name.strip().lower() == b"authentication-results" and _authserv_id(value) == ours:
            continue
        out.append(f)
    rest = head[sum(len(x) for x in _FIELD.findall(head)):]
    return b"".join(out) + rest


def from_domain(head: bytes) -> str:
    from mailcove.message.addresses import parse_address_list
    from mailcove.message.headers import first_fields

    fields, _ = first_fields(head, 0, len(head), frozenset({"from"}))
    for a in parse_address_list(fields.get("from")):
        if a.host:
            return a.host.lower()
    return ""


class InboundChecker:
    def __init__(self, settings: Settings, resolver: Resolver | None = None) -> None:
        self.settings = settings
        self.resolver = resolver or make_resolver(settings.dns.nameservers, settings.dns.timeout)
        self.authserv_id = settings.mailauth.authserv_id or settings.hostname

    async def check(self, *, ip: str, helo: str, mail_from: str, message: bytes, dkim_ok: bool = True) -> Verdict:
        cfg = self.settings.mailauth
        head = message[: header_end(message)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + cfg.timeout

        async def timed(coro, on_timeout):  # type: ignore[no-untyped-def]
            try:
                return await asyncio.wait_for(coro, max(0.01, deadline - loop.time()))
            except TimeoutError:
                return on_timeout

        spf_task = asyncio.ensure_future(timed(
            spf_mod.check_host(self.resolver, ip, mail_from, helo),
            SpfResult("temperror", (mail_from.rpartition("@")[2] or helo).lower(), "timed out")))
        if dkim_ok:
            sigs = dkim_mod.signatures(head)
            dkims = await timed(dkim_mod.verify(self.resolver, message),
                                [DkimResult("temperror", d, s, "timed out") for d, s in sigs])
        else:
            dkims = []
        spf = await spf_task
        fdom = from_domain(head)
        dmarc = await timed(dmarc_mod.check(self.resolver, fdom, spf, dkims),
                            DmarcResult("temperror", fdom, reason="timed out"))
        parts = [self.authserv_id]
        if dkims:
            for d in dkims:
                parts.append(f"dkim={d.result} header.d={d.domain} header.s={_clean(d.selector)}"
                             + (f" ({_clean(d.reason)[:80]})" if d.reason and d.result != "pass" else ""))
        else:
            parts.append("dkim=none")
        spf_prop = f"smtp.mailfrom={_clean(mail_from)}" if mail_from else f"smtp.helo={_clean(helo)}"
        parts.append(f"spf={spf.result} {spf_prop}")
        parts.append(f"dmarc={dmarc.result}" + (f" (p={dmarc.policy})" if dmarc.result != "none" else "")
                     + f" header.from={_clean(fdom) or 'unknown'}")
        header = ("Authentication-Results: " + ";\r\n\t".join(parts) + "\r\n").encode("utf-8", "replace")
        v = Verdict(spf, dkims, dmarc, header)
        if dmarc.result == "fail":
            if dmarc.policy == "reject" and cfg.dmarc_reject:
                v.reject = (550, "5.7.1", f"Rejected by the DMARC policy of {fdom}")
            elif dmarc.policy == "quarantine" and cfg.dmarc_quarantine_to_junk:
                v.junk = True
        return v


def _clean(text: str) -> str:
    # printable, no field syntax; UTF-8 stays (an SMTPUTF8 sender, RFC 8601 with RFC 6532)
    return "".join(c for c in text if (32 < ord(c) < 127 or ord(c) > 159) and c not in ";()\\\"")[:255]


async def check_inbound(checker: InboundChecker | None, message: bytes | Spool, *,
                        ip: str, helo: str, mail_from: str) -> InboundOutcome:
    """Run the checks on a message as received (bytes or a spool) and say what to add: the
    Authentication-Results field and, if the header carries fields claiming our authserv-id, that
    header without them. The message is only read: the whole of it when it is at most
    `max_dkim_bytes` (DKIM hashes the body), else its first HEADER_MAX bytes."""
    if checker is None or not checker.settings.mailauth.enabled:
        return InboundOutcome()
    limit = checker.settings.mailauth.max_dkim_bytes
    if isinstance(message, bytes | bytearray | memoryview):
        data, whole = bytes(message), True
    else:
        spool = message
        spool.finish()
        if spool.inline:
            data, whole = spool.getvalue(), True
        elif spool.size <= limit:
            data, whole = await asyncio.to_thread(spool.path.read_bytes), True
        else:
            def head_only() -> bytes:
                with open(spool.path, "rb") as f:
                    return f.read(HEADER_MAX)

            data, whole = await asyncio.to_thread(head_only), False
    # a header longer than HEADER_MAX: forged fields are looked for in its first HEADER_MAX bytes
    end = header_end(data)
    head = data[:end]
    verdict = await checker.check(ip=ip, helo=helo, mail_from=mail_from, message=data, dkim_ok=whole)
    if verdict.reject is not None:
        return InboundOutcome(verdict.header, None, verdict.junk, verdict.reject, verdict)
    kept = remove_our_results(head, checker.authserv_id)
    rewritten = RewrittenHeader(kept, end) if kept != head else None
    return InboundOutcome(verdict.header, rewritten, verdict.junk, None, verdict)


__all__ = ["InboundChecker", "InboundOutcome", "Verdict", "check_inbound", "remove_our_results"]
