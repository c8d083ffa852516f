"""DMARC (RFC 7489): the policy record of the From: domain (or its organizational domain) and
identifier alignment of the SPF and DKIM results.

The organizational domain is approximated without the Public Suffix List: the last two labels,
or three under a two-letter country code with a common second level (co.uk, com.au, ...). Enough
for alignment of ordinary domains; docs/design/outbound.md says where it falls short."""

from __future__ import annotations

from dataclasses import dataclass

from mailcove.dns import NotFound, Resolver, TempError
from mailcove.mailauth.dkim import DkimResult
from mailcove.mailauth.spf import SpfResult

_SECOND_LEVEL = {"co", "com", "net", "org", "gov", "ac", "edu", "ne", "or", "go"}


@dataclass(frozen=True, slots=True)
class DmarcResult:
    result: str  # pass | fail | none | temperror | permerror
    domain: str
    policy: str = "none"  # the policy that applies: none | quarantine | reject
    reason: str = ""


def org_domain(domain: str) -> str:
    labels = domain.lower().rstrip(".").split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def aligned(a: str, b: str, mode: str) -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    return a == b if mode == "s" else org_domain(a) == org_domain(b)


def parse(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        k, _, v = part.strip().partition("=")
        if k:
            tags[k.strip().lower()] = v.strip()
    return tags


async def _record(resolver: Resolver, domain: str) -> str | None:
    try:
        txts = await resolver.txt(f"_dmarc.{domain}")
    except NotFound:
        return None
    recs = [t.decode("ascii", "replace") for t in txts if t[:8].upper() == b"V=DMARC1"]
    return recs[0] if len(recs) == 1 else None


async def check(resolver: Resolver, from_domain: str, spf: SpfResult, dkims: list[DkimResult]) -> DmarcResult:
    from_domain = from_domain.lower().rstrip(".")
    if not from_domain:
        return DmarcResult("none", from_domain, reason="no From: domain")
    try:
        record = await _record(resolver, from_domain)
        sub = False
        org = org_domain(from_domain)
        if record is None and org != from_domain:
            record = await _record(resolver, org)
            sub = True
    except TempError as exc:
        return DmarcResult("temperror", from_domain, reason=str(exc))
    if record is None:
        return DmarcResult("none", from_domain)
    tags = parse(record)
    policy = tags.get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        return DmarcResult("permerror", from_domain, reason=f"bad p={policy!r}")
    if sub and tags.get("sp", "").lower() in ("none", "quarantine", "reject"):
        policy = tags["sp"].lower()
    adkim, aspf = tags.get("adkim", "r").lower(), tags.get("aspf", "r").lower()
    if spf.result == "pass" and aligned(spf.domain, from_domain, aspf):
        return DmarcResult("pass", from_domain, policy, "spf aligned")
    for d in dkims:
        if d.result == "pass" and aligned(d.domain, from_domain, adkim):
            return DmarcResult("pass", from_domain, policy, "dkim aligned")
    if spf.result == "temperror" or any(d.result == "temperror" for d in dkims):
        return DmarcResult("temperror", from_domain, policy, "a check could not finish")
    return DmarcResult("fail", from_domain, policy)
