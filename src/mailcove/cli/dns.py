"""`mailcove dns DOMAIN`: every DNS record DOMAIN needs to receive, send and be found, in
zone-file syntax: MX, A/AAAA of the host, SPF, DKIM, DMARC, and for what this configuration serves
the SRV records of RFC 6186 (with RFC 8314's submissions) so that mail clients find the server,
the autoconfig/autodiscover names, MTA-STS and TLS-RPT. The records come from
mailcove.check.records, which `mailcove check` compares with what DNS publishes. DOMAIN must be a
local domain (or an alias of one): records for any other name would send its mail here."""

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
    from mailcove import admin
    from mailcove.admin.runner import fail, run

    settings = obj.settings
    name = domain.strip().lower().rstrip(".")
    local = sorted(d.name for d in run(settings, admin.list_domains))
    if name not in local:
        known = f"the local domains are {', '.join(local)}" if local else "there is no local domain yet"
        fail(f"{domain!r} is not a local domain ({known}); add it first: mailcove domain add NAME")
    addrs = list(addresses) or host_addresses(settings.hostname)
    for line in records(settings, name, addrs):
        click.echo(line)


def register(root: click.Group) -> None:
    root.add_command(dns)
