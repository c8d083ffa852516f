"""`mailcove dns DOMAIN`: every DNS record DOMAIN needs to receive, send and be found, in
zone-file syntax: MX, A/AAAA of the host, SPF, DKIM, DMARC, and the SRV records of RFC 6186
(with RFC 8314's submissions) so that mail clients find the server."""

from __future__ import annotations

import socket
from typing import Any

import click


def records(settings: Any, domain: str, addresses: list[str]) -> list[str]:
    from mailcove.queue.dkim import public_records, zone_line

    host = settings.hostname.rstrip(".")
    d = domain.rstrip(".")
    out = ["; mail for the domain goes to this server", f"{d}. IN MX 10 {host}."]
    for a in addresses:
        out.append(f"{host}. IN {'AAAA' if ':' in a else 'A'} {a}")
    out += ["; SPF (RFC 7208): only the MX hosts send for the domain",
            f'{d}. IN TXT "v=spf1 mx -all"']
    dkim = public_records(settings, d)
    if dkim:
        out.append("; DKIM (RFC 6376, RFC 8463)")
        out += [zone_line(sel, d, value) for sel, value in dkim]
    else:
        out.append(f"; DKIM: no key yet; mailcove dkim generate {d}")
    out += ["; DMARC (RFC 7489): start with p=none and reports, then quarantine or reject",
            f'_dmarc.{d}. IN TXT "v=DMARC1; p=quarantine; adkim=r; aspf=r; rua=mailto:postmaster@{d}"',
            "; client configuration (RFC 6186, RFC 8314)"]
    for service, port in (("submissions", 465), ("submission", 587), ("imaps", 993), ("imap", 143),
                          ("pop3s", 995), ("pop3", 110)):
        out.append(f"_{service}._tcp.{d}. IN SRV 0 1 {port} {host}.")
    return out


@click.command("dns")
@click.argument("domain")
@click.option("--address", "addresses", multiple=True, metavar="IP",
              help="Public address(es) of this server (default: what the hostname resolves to).")
@click.pass_obj
def dns(obj: Any, domain: str, addresses: tuple[str, ...]) -> None:
    """Print the DNS records DOMAIN needs (zone-file syntax)."""
    settings = obj.settings
    addrs = list(addresses)
    if not addrs:
        try:
            addrs = sorted({ai[4][0] for ai in socket.getaddrinfo(settings.hostname, None, type=socket.SOCK_STREAM)})
        except OSError:
            addrs = []
        if not addrs:
            addrs = ["192.0.2.1 ; replace with this server's public address"]
    for line in records(settings, domain.strip().lower(), addrs):
        click.echo(line)


def register(root: click.Group) -> None:
    root.add_command(dns)
