"""`mailcove dkim generate|show DOMAIN`: DKIM keys for a local domain and their DNS records."""

from __future__ import annotations

from typing import Any

import click


@click.group()
def dkim() -> None:
    """DKIM signing keys (RSA-2048 and Ed25519) for local domains."""


def _print_records(settings: Any, domain: str) -> None:
    from mailcove.queue.dkim import public_records, zone_line

    records = public_records(settings, domain)
    if not records:
        raise click.ClickException(f"no DKIM key for {domain}: mailcove dkim generate {domain}")
    for selector, value in records:
        click.echo(zone_line(selector, domain, value))


@dkim.command("generate")
@click.argument("domain")
@click.option("--force", is_flag=True, help="Replace existing keys (mail signed with the old ones then fails).")
@click.pass_obj
def generate(obj: Any, domain: str, force: bool) -> None:
    """Make an RSA-2048 and an Ed25519 key for DOMAIN and print their TXT records (zone-file syntax)."""
    from mailcove.queue.dkim import generate as make

    domain = domain.strip().lower().rstrip(".")
    settings = obj.settings
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    made = make(settings, domain, force=force)
    for path in made:
        click.echo(f"; wrote {path}", err=True)
    if not made:
        click.echo(f"; {domain} already has keys (--force replaces them)", err=True)
    _print_records(settings, domain)


@dkim.command("show")
@click.argument("domain")
@click.pass_obj
def show(obj: Any, domain: str) -> None:
    """Print the TXT records of DOMAIN's keys."""
    _print_records(obj.settings, domain.strip().lower().rstrip("."))


def register(root: click.Group) -> None:
    root.add_command(dkim)
