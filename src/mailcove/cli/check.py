"""`mailcove check`: diagnose an installation (listeners, TLS certificate, DNS records, open relay)
and print a fix for each problem. Exit status 1 when something failed, 0 otherwise (warnings and
lab-mode notes included); `--json` for scripts. docs/check.md."""

from __future__ import annotations

import asyncio
from typing import Any

import click

STATUS_LABEL = {"ok": "ok  ", "note": "note", "warn": "WARN", "fail": "FAIL"}
STATUS_COLOUR = {"ok": "green", "note": "cyan", "warn": "yellow", "fail": "red"}


@click.command("check")
@click.option("--domain", "domains", multiple=True, metavar="DOMAIN",
              help="Check the DNS records of DOMAIN (repeatable; default: every local domain).")
@click.option("--address", "addresses", multiple=True, metavar="IP",
              help="This server's public address(es), for the A/AAAA comparison (default: any address will do).")
@click.option("--probe-from", metavar="IP", help="Source address of the open-relay probe (an address of this machine).")
@click.option("--timeout", type=float, default=5.0, show_default=True, help="Seconds for each connection or lookup.")
@click.option("--skip", multiple=True, type=click.Choice(["listeners", "tls", "dns", "relay", "index"]),
              help="Leave out a check (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="Print only problems and warnings.")
@click.pass_obj
def check(obj: Any, domains: tuple[str, ...], addresses: tuple[str, ...], probe_from: str | None, timeout: float,
          skip: tuple[str, ...], as_json: bool, quiet: bool) -> None:
    """Diagnose this installation and print a fix for each problem."""
    from mailcove.check.runner import run

    settings = obj.settings
    report = asyncio.run(run(settings, domains=[d.strip().lower() for d in domains], addresses=list(addresses),
                             probe_from=probe_from, timeout=timeout, skip=skip))
    if as_json:
        click.echo(report.to_json())
    else:
        current = ""
        for f in report.findings:
            if quiet and f.status == "ok":
                continue
            if f.check != current:
                current = f.check
                click.echo(click.style(f"{current}:", bold=True))
            label = click.style(STATUS_LABEL[f.status], fg=STATUS_COLOUR[f.status])
            click.echo(f"  {label} {f.subject}: {f.detail}")
            if f.fix and f.status != "ok":
                click.echo(f"         fix: {f.fix}")
        fails, warns = len(report.failed), sum(1 for f in report.findings if f.status == "warn")
        notes = sum(1 for f in report.findings if f.status == "note")
        summary = "no problems found" if not fails else f"{fails} problem{'s' if fails != 1 else ''} found"
        if warns:
            summary += f", {warns} warning{'s' if warns != 1 else ''}"
        if notes:
            summary += f", {notes} lab-mode note{'s' if notes != 1 else ''}"
        click.echo(summary)
    raise SystemExit(0 if report.ok else 1)


def register(root: click.Group) -> None:
    root.add_command(check)
