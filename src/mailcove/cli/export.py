"""`mailcove export USER DEST --format mbox|maildir`: write a user's mail out, flags, dates,
UIDVALIDITY and UIDs included, in the layouts `mailcove import` and Dovecot read
(importers/export.py):

    mailcove export a@hamap.local /tmp/a-mail --format mbox      # then: mbox:/tmp/a-mail
    mailcove export a@hamap.local /tmp/a-Maildir --format maildir --newline crlf
"""

from __future__ import annotations

from pathlib import Path

import click

from mailcove.admin.context import AdminContext
from mailcove.admin.runner import fail, run
from mailcove.cli.import_mail import account_key, progress_bar
from mailcove.importers import export as exporter
from mailcove.importers.mbox import QUOTINGS


@click.command("export")
@click.argument("user")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["mbox", "maildir"]), required=True, help="Output format.")
@click.option("--mailbox", metavar="NAME", help="Export only this mailbox.")
@click.option("--newline", type=click.Choice(["lf", "crlf"]), default="lf", show_default=True,
              help="Line ends of the written messages (the source's, to get its bytes back).")
@click.option("--from-quoting", "quoting", type=click.Choice(QUOTINGS), default="none", show_default=True,
              help="mbox: escape body 'From ' lines (mboxrd/mboxo) instead of Content-Length where needed.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_obj
def export(obj: object, user: str, dest: Path, fmt: str, mailbox: str | None, newline: str, quoting: str,
           quiet: bool) -> None:
    """Write USER's mailboxes to DEST as mbox files or a Maildir++ tree."""
    settings = obj.settings  # type: ignore[attr-defined]
    user = user.strip().lower()
    nl = b"\r\n" if newline == "crlf" else b"\n"

    async def use_case(ctx: AdminContext) -> exporter.ExportReport:
        store = await ctx.store()
        key = await account_key(ctx, user, create=False)
        if not await store.account_exists(key):
            fail(f"no mail stored for {key}")
        total = sum(b.messages for b in await store.list_mailboxes(key)
                    if mailbox is None or b.name == mailbox)
        with progress_bar(total, quiet, f"exporting {key}", in_bytes=False) as advance:
            if fmt == "mbox":
                return await exporter.export_mbox(store, key, dest, mailbox=mailbox, newline=nl, quoting=quoting,
                                                  progress=advance)
            return await exporter.export_maildir(store, key, dest, mailbox=mailbox, newline=nl, progress=advance)

    try:
        report = run(settings, use_case)
    except ValueError as exc:
        fail(str(exc), 2)
    for p in report.problems:
        click.echo(f"warning: {p}", err=True)
    click.echo(f"{user}: {report.messages} messages in {report.mailboxes} mailboxes written to {dest}")


def register(root: click.Group) -> None:
    root.add_command(export)
