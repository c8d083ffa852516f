"""The DNS records a domain needs, as data: `mailcove dns DOMAIN` prints them in zone-file syntax
and `mailcove check` compares them with what DNS publishes.

Groups, in print order: MX and the host's A/AAAA (receiving), SPF, DKIM, DMARC (sending),
the SRV records of RFC 6186 / RFC 8314 and the autoconfig/autodiscover names (clients find the
server), MTA-STS (RFC 8461) and TLS-RPT (RFC 8460). `required` marks what mail needs to flow;
the rest makes clients and senders work better and is a warning when missing.

Only what the running configuration serves is asked for: an SRV record for each listener a client
may use (web.clientconfig.endpoints, with the port it is bound on), the autoconfig name when an
HTTP listener runs, autodiscover and MTA-STS when HTTPS runs, TLS-RPT when TLS is on. Lab mode
(no TLS) therefore asks for none of the HTTPS ones."""

from __future__ import annotations

from dataclasses import dataclass

from mailcove.config import Settings
from mailcove.web import mtasts
from mailcove.web.clientconfig import ListenerState, endpoints

# The listeners with an SRV record of RFC 6186 (and RFC 8314's submissions), in print order.
SRV_SERVICES: tuple[str, ...] = ("submissions", "submission", "imaps", "imap", "pop3s", "pop3")
DMARC_POLICY = "none"  # what `mailcove dns` suggests first; GROUP_TITLES["dmarc"] says why
PLACEHOLDER_ADDRESS = "192.0.2.1"


@dataclass(frozen=True, slots=True)
class Record:
    name: str  # without the trailing dot
    rtype: str  # MX A AAAA TXT SRV CNAME
    value: str  # MX: "10 host"; SRV: "0 1 993 host"; CNAME: "host"; TXT: the text, unsplit; A: address
    group: str
    required: bool = True
    comment: str = ""  # printed after the record (";" comment), e.g. for a placeholder address

    def zone_line(self) -> str:
        if self.rtype == "TXT":
            from mailcove.queue.dkim import txt_strings

            parts = txt_strings(self.value)
            rdata = " ".join(f'"{s}"' for s in parts)
            if len(parts) > 1:
                rdata = f"( {rdata} )"
        elif self.rtype in ("MX", "SRV", "CNAME"):
            rdata = self.value + "."
        else:
            rdata = self.value
        line = f"{self.name}. IN {self.rtype} {rdata}"
        return f"{line} ; {self.comment}" if self.comment else line


GROUP_TITLES = {
    "mx": "mail for the domain goes to this server",
    "host": "this server's address",
    "spf": "SPF (RFC 7208): only the MX hosts send for the domain",
    "dkim": "DKIM (RFC 6376, RFC 8463)",
    "dmarc": f"DMARC (RFC 7489): p={DMARC_POLICY} asks receivers for reports only; once they show that only "
             "your own servers send as the domain, change it to p=quarantine, then p=reject",
    "srv": "client configuration (RFC 6186, RFC 8314)",
    "autoconfig": "Thunderbird's autoconfiguration (http://autoconfig.DOMAIN/)",
    "autodiscover": "Outlook's autodiscover (over HTTPS)",
    "mta-sts": "MTA-STS (RFC 8461): senders require TLS to the MX; the policy is at https://mta-sts.DOMAIN",
    "tls-rpt": "TLS reporting (RFC 8460): where senders report TLS failures",
}


def served_ports(settings: Settings) -> dict[str, list[int]]:
    """listener -> its ports: the running server's (its serve.json), else the configured plan."""
    return ListenerState(settings).ports()


def expected(settings: Settings, domain: str, addresses: list[str],
             ports: dict[str, list[int]] | None = None) -> list[Record]:
    """Every record `domain` needs. `addresses`: this server's public addresses ([] gives a
    placeholder the admin must replace); `ports`: the listeners served (default: served_ports)."""
    from mailcove.queue.dkim import public_records

    ports = served_ports(settings) if ports is None else ports
    host = settings.hostname.rstrip(".").lower()
    d = domain.rstrip(".").lower()
    out = [Record(d, "MX", f"10 {host}", "mx")]
    for a in addresses or [PLACEHOLDER_ADDRESS]:
        out.append(Record(host, "AAAA" if ":" in a else "A", a, "host",
                          comment="" if addresses else "replace with this server's public address"))
    out.append(Record(d, "TXT", "v=spf1 mx -all", "spf"))
    for selector, value in public_records(settings, d):
        out.append(Record(f"{selector}._domainkey.{d}", "TXT", value, "dkim"))
    out.append(Record(f"_dmarc.{d}", "TXT",
                      f"v=DMARC1; p={DMARC_POLICY}; adkim=r; aspf=r; rua=mailto:postmaster@{d}", "dmarc"))
    offered = {e.listener: e for e in endpoints(settings, ports)}
    for service in SRV_SERVICES:
        if service in offered:
            e = offered[service]
            out.append(Record(f"_{service}._tcp.{d}", "SRV", f"0 1 {e.port} {e.host}", "srv", required=False))
    https = ports.get("https") if settings.tls.enabled else None
    if ports.get("http") or https:
        out.append(Record(f"autoconfig.{d}", "CNAME", host, "autoconfig", required=False))
    if https:
        # Outlook's autodiscover (MS-OXDISCO 3.1.5.2) and the MTA-STS policy are fetched over HTTPS only.
        out.append(Record(f"autodiscover.{d}", "CNAME", host, "autodiscover", required=False))
        out.append(Record(f"_autodiscover._tcp.{d}", "SRV", f"0 1 {https[0]} {host}", "autodiscover",
                          required=False))
        out.append(Record(f"_mta-sts.{d}", "TXT", f"v=STSv1; id={mtasts.policy_id(settings)}", "mta-sts",
                          required=False))
        out.append(Record(f"mta-sts.{d}", "CNAME", host, "mta-sts", required=False))
    if settings.tls.enabled:
        out.append(Record(f"_smtp._tls.{d}", "TXT", f"v=TLSRPTv1; rua=mailto:postmaster@{d}", "tls-rpt",
                          required=False))
    return out


def zone_text(settings: Settings, domain: str, addresses: list[str]) -> list[str]:
    """The records as zone-file lines with a comment above each group (`mailcove dns`)."""
    from mailcove.queue.dkim import public_records

    d = domain.rstrip(".").lower()
    lines: list[str] = []
    group = ""
    records = expected(settings, d, addresses)
    for rec in records:
        if rec.group != group:
            if group == "spf" and not public_records(settings, d):
                lines.append(f"; DKIM: no key yet; mailcove dkim generate {d}")
            group = rec.group
            title = GROUP_TITLES[group].replace("DOMAIN", d)
            if group != "host":  # the host's address belongs with the MX line
                lines.append(f"; {title}")
        lines.append(rec.zone_line())
    return lines
