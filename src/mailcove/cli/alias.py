"""`mailcove alias add|list|del`: one address (or `@domain`, a catch-all) to several addresses."""

from __future__ import annotations

import click

from mailcove import admin
from mailcove.admin.runner import emit, run


@click.group()
def alias() -> None:
    """Aliases and catch-alls."""


@alias.command("add")
@click.argument("source")
@click.argument("targets", nargs=-1, required=True)
@click.pass_obj
def add(obj: object, source: str, targets: tuple[str, ...]) -> None:
    """Make SOURCE (an address, or @DOMAIN for a catch-all) deliver to TARGETS (local or remote).
    Adding to an existing alias adds targets."""
    info = run(obj.settings, lambda ctx: admin.add_alias(ctx, source, targets))  # type: ignore[attr-defined]
    click.echo(f"{info.source} -> {', '.join(info.targets)}")


@alias.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_(obj: object, as_json: bool) -> None:
    """List aliases."""
    rows = run(obj.settings, admin.list_aliases)  # type: ignore[attr-defined]
    emit(
        [{"source": a.source, "targets": list(a.targets)} for a in rows],
        [("source", "Alias"), ("targets", "Delivers to")],
        as_json=as_json,
        empty="no aliases",
    )


@alias.command("del")
@click.argument("source")
@click.argument("target", required=False)
@click.pass_obj
def delete(obj: object, source: str, target: str | None) -> None:
    """Delete an alias, or only one of its targets."""
    info = run(obj.settings, lambda ctx: admin.delete_alias(ctx, source, target))  # type: ignore[attr-defined]
    if target is None or not info.targets:
        click.echo(f"deleted alias {info.source}")
    else:
        click.echo(f"{info.source} -> {', '.join(info.targets)}")


def register(root: click.Group) -> None:
    root.add_command(alias)
