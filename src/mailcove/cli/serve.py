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
@click.pass_obj
def serve(obj: object, listen: tuple[str, ...], user: str | None) -> None:
    """Run SMTP, IMAP, POP3 and HTTP in one process until SIGTERM or SIGINT (SIGHUP reloads TLS)."""
    settings = obj.settings  # type: ignore[attr-defined]
    try:
        code = run_server(settings, listen, user)
    except ConfigError as exc:
        click.echo(f"mailcove: config error: {exc}", err=True)
        sys.exit(2)
    except StartupError as exc:
        click.echo(f"mailcove: {exc}", err=True)
        sys.exit(1)
    sys.exit(code)


def register(root: click.Group) -> None:
    root.add_command(serve)
