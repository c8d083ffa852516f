"""The records DNS publishes for each domain against what `mailcove dns DOMAIN` says they should
be (check/records.py), asked through dnspython with [dns] nameservers (else /etc/resolv.conf).
Addresses are also asked of the system resolver (getaddrinfo, which follows nsswitch.conf: files,
then dns). In the seed's lab, whose clients find the server through their hosts files, a name in
/etc/hosts counts as resolved; elsewhere only DNS does (other mail servers never see this
machine's /etc/hosts), and the finding says that only /etc/hosts names it.

A missing required record (MX, the host's address, SPF, DKIM for a key that exists, DMARC) is
a failure; the records that help clients and senders (SRV, autoconfig, MTA-STS, TLS-RPT) are
warnings. Every problem's fix is the zone-file line to add."""

from __future__ import annotations

import asyncio
import socket

from mailcove.check.model import Finding
from mailcove.check.records import Record, expected, served_ports
from mailcove.config import Settings
from mailcove.dns import DnsError, NotFound, TempError
from mailcove.dns.dnspython import DnsPythonResolver


class CheckResolver(DnsPythonResolver):
    """The server's resolver plus the two record types only the check needs."""

    def __init__(self, nameservers: list[str], timeout: float) -> None:
        super().__init__(nameservers, timeout)
        self._r.cache = None  # the check must see what DNS says now
        self.timeout = timeout

    async def system_addresses(self, name: str) -> set[str]:
        """What every program on this machine gets for `name`: the system resolver, in
        nsswitch.conf's order (/etc/hosts first, then DNS)."""
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(name, None, type=socket.SOCK_STREAM), self.timeout)
        except (OSError, TimeoutError, UnicodeError):
            return set()
        return {str(ai[4][0]) for ai in infos}

    async def srv(self, name: str) -> list[tuple[int, str]]:
        rows = await self._query(name, "SRV")
        return [(r.port, r.target.to_text(omit_final_dot=True).lower()) for r in rows]  # type: ignore[attr-defined]

    async def cname(self, name: str) -> list[str]:
        rows = await self._query(name, "CNAME")
        return [r.target.to_text(omit_final_dot=True).lower() for r in rows]  # type: ignore[attr-defined]


async def _lookup(coro: object) -> tuple[list[object], str | None]:
    """(answers, None) or ([], why) for NXDOMAIN / no answer / failure."""
    try:
        return list(await coro), None  # type: ignore[misc]
    except NotFound:
        return [], "the name does not exist (NXDOMAIN)"
    except TempError as exc:
        return [], f"lookup failed: {exc}"
    except DnsError as exc:
        return [], str(exc)


def _txts(rows: list[object]) -> list[str]:
    return [r.decode("utf-8", "replace") if isinstance(r, bytes) else str(r) for r in rows]


async def check_record(r: CheckResolver, rec: Record, host_addresses: set[str], only_here: set[str],
                       lab: bool) -> Finding:
    """One expected record against DNS. `only_here`: the host's addresses that only this machine's
    resolver knows; with `lab`, that resolver's answers count (see `check`)."""
    subject = f"{rec.name} {rec.rtype}"
    status = "fail" if rec.required else "warn"
    add = f"add to the zone: {rec.zone_line()}"
    if rec.rtype == "MX":
        rows, why = await _lookup(r.mx(rec.name))
        target = rec.value.split()[1]
        found = [str(x[1]).lower() for x in rows]  # type: ignore[index]
        if target in found:
            return Finding("dns", subject, "ok", f"MX {target}")
        detail = why or ("no MX record" if not found else f"MX points at {', '.join(found)}, not {target}")
        return Finding("dns", subject, status, detail, add)
    if rec.rtype in ("A", "AAAA"):
        if rec.comment:  # no public address given: any address for the host will do
            if host_addresses:
                return Finding("dns", f"{rec.name} A/AAAA", "ok", ", ".join(sorted(host_addresses)))
            detail = "the host name has no A or AAAA record"
            if only_here:
                detail += (f" in DNS; only this machine resolves it ({', '.join(sorted(only_here))}, /etc/hosts), "
                           "so other servers cannot find it")
            return Finding("dns", f"{rec.name} A/AAAA", status, detail,
                           f"add to the zone: {rec.name}. IN A <this server's public address>")
        if rec.value in host_addresses:
            return Finding("dns", subject, "ok", rec.value)
        shown = ", ".join(sorted(host_addresses)) or "nothing"
        return Finding("dns", subject, status, f"{rec.name} resolves to {shown}, not {rec.value}", add)
    if rec.rtype == "TXT":
        rows, why = await _lookup(r.txt(rec.name))
        texts = _txts(rows)
        return _compare_txt(rec, texts, why, subject, status, add)
    if rec.rtype == "SRV":
        rows, why = await _lookup(r.srv(rec.name))
        _prio, _weight, port, target = rec.value.split()
        if (int(port), target) in rows:
            return Finding("dns", subject, "ok", f"{target}:{port}")
        shown = ", ".join(f"{t}:{p}" for p, t in rows) if rows else (why or "no SRV record")  # type: ignore[misc]
        return Finding("dns", subject, status, f"{shown} (expected {target}:{port})", add)
    if rec.rtype == "CNAME":
        rows, why = await _lookup(r.cname(rec.name))
        if rec.value in rows:
            return Finding("dns", subject, "ok", f"-> {rec.value}")
        # An A record with the host's address does the same job as the CNAME.
        found, _ = await _lookup(r.a(rec.name))
        addrs = {str(a) for a in found} or (await r.system_addresses(rec.name) if lab else set())
        if addrs and host_addresses and addrs <= host_addresses:
            return Finding("dns", subject, "ok", f"{', '.join(sorted(addrs))} (the host's address)")
        shown = f"CNAME {', '.join(map(str, rows))}" if rows else (why or "no record")
        return Finding("dns", subject, status, f"{shown} (expected CNAME {rec.value})", add)
    return Finding("dns", subject, "warn", f"record type {rec.rtype} is not checked")


def _compare_txt(rec: Record, texts: list[str], why: str | None, subject: str, status: str, add: str) -> Finding:
    prefix = rec.value.split(";", 1)[0].split(" ", 1)[0]  # "v=spf1", "v=DKIM1", "v=DMARC1", "v=STSv1"
    ours = [t for t in texts if t.lower().startswith(prefix.lower())]
    if rec.group == "dkim":
        want_p = rec.value.rsplit("p=", 1)[1]
        if any(t.replace(" ", "").endswith("p=" + want_p) or f"p={want_p};" in t.replace(" ", "") for t in ours):
            return Finding("dns", subject, "ok", "public key matches the signing key")
        detail = "a different public key is published (the key was regenerated?)" if ours else (
            why or "no DKIM record: receivers cannot verify the signature")
        return Finding("dns", subject, status, detail, add)  # type: ignore[arg-type]
    if not ours:
        return Finding("dns", subject, status, why or f"no {prefix} record", add)  # type: ignore[arg-type]
    if len(ours) > 1 and rec.group in ("spf", "dmarc"):
        return Finding("dns", subject, "fail", f"{len(ours)} {prefix} records: receivers treat that as an error",
                       f"keep one: {rec.zone_line()}")
    if rec.group == "mta-sts" and ours[0].replace(" ", "") != rec.value.replace(" ", ""):
        return Finding("dns", subject, "warn", f"published {ours[0]!r}: the policy id is not the current one, so "
                       "senders keep a cached old policy", f"update the record: {rec.zone_line()}")
    same = ours[0].replace(" ", "") == rec.value.replace(" ", "")
    return Finding("dns", subject, "ok", ours[0][:100] + ("" if same else " (differs from the suggested record)"))


async def check(settings: Settings, domains: list[str], addresses: list[str], timeout: float,
                lab: bool = False) -> list[Finding]:
    """`lab`: the seed's lab, whose clients resolve the host through /etc/hosts: what the system
    resolver answers counts as the host's address. Elsewhere it counts only along with DNS, since
    other mail servers see DNS, not this machine's /etc/hosts."""
    r = CheckResolver(settings.dns.nameservers, timeout)
    host = settings.hostname.rstrip(".").lower()
    a, _ = await _lookup(r.a(host))
    aaaa, _ = await _lookup(r.aaaa(host))
    in_dns = {str(x) for x in [*a, *aaaa]}
    here = await r.system_addresses(host)
    host_addresses = in_dns | here if in_dns or lab else set()
    only_here = here - in_dns
    out: list[Finding] = []
    if not domains:
        return [Finding("dns", "domains", "warn", "no local domain to check",
                        "add one: `mailcove domain add example.org`")]
    seen: set[tuple[str, str]] = set()
    ports = served_ports(settings)
    for domain in domains:
        records = [rec for rec in expected(settings, domain, addresses, ports)
                   if (rec.name, rec.rtype) not in seen or rec.group != "host"]
        for rec in records:
            seen.add((rec.name, rec.rtype))
        out.extend(await asyncio.gather(*(check_record(r, rec, host_addresses, only_here, lab) for rec in records)))
    return out
