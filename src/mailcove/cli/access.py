"""`mailcove access import FILE`: a whole Sendmail /etc/mail/access file at once."""

from __future__ import annotations

import sys

import click

from mailcove import admin
from mailcove.admin.runner import run


@click.group()
def access() -> None:
    """Sendmail access files."""


@access.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--replace", is_flag=True, help="Delete every existing access rule first (like rebuilding access.db).")
@click.option("--dry-run", is_flag=True, help="Only report what would be imported.")
@click.pass_obj
def import_(obj: object, file: str, replace: bool, dry_run: bool) -> None:
    """Import FILE. Lines that cannot be mapped (other tags, SKIP, QUARANTINE, ...) are listed as
    FILE:LINE on stderr and the exit status is 1; all the other lines are still imported."""
    report = run(
        obj.settings,  # type: ignore[attr-defined]
        lambda ctx: admin.import_access_file(ctx, file, replace=replace, dry_run=dry_run),
    )
    for line in report.imported:
        assert line.rule is not None
        click.echo(f"{file}:{line.lineno}: {line.rule.display.expandtabs(1)}")
    for problem in report.problems():
        click.echo(f"mailcove: not imported: {problem}", err=True)
    if dry_run:
        click.echo(f"dry run: {len(report.imported)} rule(s) would be imported, {len(report.unmapped)} line(s) not")
    else:
        click.echo(
            f"imported {len(report.imported)} rule(s) ({report.created} new, {report.updated} updated)"
            + (f"; {len(report.unmapped)} line(s) could not be mapped" if report.unmapped else "")
        )
    if report.unmapped:
        sys.exit(1)


def register(root: click.Group) -> None:
    root.add_command(access)
