"""`mailcove dns DOMAIN`: every DNS record DOMAIN needs to receive, send and be found, in
zone-file syntax: MX, A/AAAA of the host, SPF, DKIM, DMARC, the SRV records of RFC 6186 (with
RFC 8314's submissions) so that mail clients find the server, the autoconfig/autodiscover names,
MTA-STS and TLS-RPT. The records come from mailcove.check.records, which `mailcove check`
compares with what DNS publishes."""

from __future__ import annotations

import socket
from typing import Any

import click


def records(settings: Any, domain: str, addresses: list[str]) -> list[str]:
    from mailcove.check.records import zone_text

    return zone_text(settings, domain, addresses)


def host_addresses(hostname: str) -> list[str]:
    """What the hostname resolves to here, loopback left out (never a public address)."""
    try:
        infos = socket.getaddrinfo(hostname, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({str(ai[4][0]) for ai in infos if not str(ai[4][0]).startswith(("127.", "::1"))})


@click.command("dns")
@click.argument("domain")
@click.option("--address", "addresses", multiple=True, metavar="IP",
              help="Public address(es) of this server (default: what the hostname resolves to).")
@click.pass_obj
def dns(obj: Any, domain: str, addresses: tuple[str, ...]) -> None:
    """Print the DNS records DOMAIN needs (zone-file syntax)."""
    settings = obj.settings
    addrs = list(addresses) or host_addresses(settings.hostname)
    for line in records(settings, domain.strip().lower(), addrs):
        click.echo(line)


def register(root: click.Group) -> None:
    root.add_command(dns)
