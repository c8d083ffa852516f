"""`mailcove tls show`: the certificate the server uses (generated if absent)."""

from __future__ import annotations

import json
import sys

import click

from mailcove.app import certificate_info
from mailcove.config import ConfigError


@click.group()
def tls() -> None:
    """TLS certificate."""


@tls.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def show(obj: object, as_json: bool) -> None:
    """Print subject, SANs, expiry and SHA-256 fingerprint of the active certificate."""
    settings = obj.settings  # type: ignore[attr-defined]
    try:
        info = certificate_info(settings)
    except ConfigError as exc:
        click.echo(f"mailcove: config error: {exc}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps({
            "path": str(info.path),
            "subject": info.subject,
            "sans": info.sans,
            "not_before": info.not_before.isoformat(),
            "not_after": info.not_after.isoformat(),
            "sha256": info.sha256,
        }, indent=2))
        return
    click.echo(f"file:     {info.path}")
    click.echo(f"subject:  {info.subject}")
    click.echo(f"SANs:     {', '.join(info.sans) or '(none)'}")
    click.echo(f"valid:    {info.not_before:%Y-%m-%d %H:%M:%S} UTC to {info.not_after:%Y-%m-%d %H:%M:%S} UTC")
    click.echo(f"SHA-256:  {info.sha256}")


def register(root: click.Group) -> None:
    root.add_command(tls)
