"""`mailcove deliver`: a local delivery agent, like dovecot-lda.

    mailcove deliver --to a@hamap.local < message

Reads one message from stdin and stores it for each recipient: a DELIVER request through the
running server's control socket, or the same request run in this process, straight into the
store, when no server runs (delivery/local.py). Exits only after the message is durable. Exit
codes follow sysexits.h, as MTAs expect of an LDA: 0 delivered, 67 no such user, 75 temporary
failure (try again later), 65 message refused, 64 usage."""

from __future__ import annotations

import sys

import click

from mailcove.delivery.local import run_locally
from mailcove.message.newlines import CrlfNormalizer
from mailcove.net.control import ControlClient, ControlUnavailable, Request

EX_USAGE, EX_DATAERR, EX_NOUSER, EX_TEMPFAIL = 64, 65, 67, 75


@click.command()
@click.option("--to", "-d", "recipients", multiple=True, required=True, metavar="ADDRESS",
              help="Recipient account (repeatable), e.g. a@hamap.local.")
@click.option("--raw", is_flag=True, help="Store the bytes exactly as given (no bare-LF to CRLF conversion).")
@click.pass_obj
def deliver(obj: object, recipients: tuple[str, ...], raw: bool) -> None:
    """Deliver one message from stdin to local mailboxes."""
    settings = obj.settings  # type: ignore[attr-defined]
    limit = settings.server.max_message_bytes
    data = sys.stdin.buffer.read(limit + 1)
    if len(data) > limit:
        click.echo(f"mailcove: message larger than {limit} bytes ([server] max_message_bytes)", err=True)
        sys.exit(EX_DATAERR)
    if not data:
        click.echo("mailcove: empty message on stdin", err=True)
        sys.exit(EX_USAGE)
    if not raw:
        # Local pipes carry bare-LF text; convert once here so the stored size is what IMAP and
        # POP3 serve (DESIGN.md section 4).
        n = CrlfNormalizer()
        data = n.feed(data) + n.finish()
    rcpts = [r.strip().lower() for r in recipients]
    if any(not r or any(c.isspace() for c in r) for r in rcpts):
        click.echo("mailcove: bad recipient", err=True)
        sys.exit(EX_USAGE)
    try:
        try:
            with ControlClient(settings.control_socket_path) as client:
                result = client.deliver(data, rcpts)
        except ControlUnavailable:
            result = run_locally(settings, Request.deliver(len(data), rcpts), data)
    except OSError as exc:
        click.echo(f"mailcove: {exc}", err=True)
        sys.exit(EX_TEMPFAIL)
    if result.ok:
        return
    click.echo(f"mailcove: {result.code} {result.enhanced} {result.text}", err=True)
    if result.enhanced == "5.1.1":
        sys.exit(EX_NOUSER)
    sys.exit(EX_TEMPFAIL if 400 <= result.code < 500 else EX_DATAERR)


def register(root: click.Group) -> None:
    root.add_command(deliver)
