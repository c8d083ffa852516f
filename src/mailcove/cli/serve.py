"""`mailcove serve`: run the server (the composition root lives in mailcove.app)."""

from __future__ import annotations

import sys

import click

from mailcove.app import StartupError, run_server
from mailcove.config import ConfigError


@click.command()
@click.option(
    "--listen",
    "listen",
    multiple=True,
    metavar="NAME=HOST:PORT",
    help="Override a listener (smtp, submission, submissions, imap, imaps, pop3, pop3s, http). "
    "Repeatable; HOST may be *, an IP, or [IPv6]; `NAME=` switches the listener off.",
)
@click.option(
    "--user",
    "user",
    metavar="NAME",
    help="Started as root: the user to become after binding (overrides [server] user; root = stay root).",
)
@click.option(
    "--workers",
    "workers",
    type=click.IntRange(min=0),
    metavar="N",
    help="Processes serving connections (overrides [server] workers; 0 = one per core, the default). The first "
    "also runs SMTP, HTTP, the queue and the control socket; the others serve IMAP and POP3.",
)
@click.pass_obj
def serve(obj: object, listen: tuple[str, ...], user: str | None, workers: int | None) -> None:
    """Run SMTP, IMAP, POP3 and HTTP until SIGTERM or SIGINT (SIGHUP reloads TLS)."""
    settings = obj.settings  # type: ignore[attr-defined]
    try:
        code = run_server(settings, listen, user, workers=workers)
    except ConfigError as exc:
        click.echo(f"mailcove: config error: {exc}", err=True)
        sys.exit(2)
    except StartupError as exc:
        click.echo(f"mailcove: {exc}", err=True)
        sys.exit(1)
    sys.exit(code)


def register(root: click.Group) -> None:
    root.add_command(serve)
