"""`mailcove domain add|list|del`: the local domains (Sendmail's local-host-names)."""

from __future__ import annotations

import click

from mailcove import admin
from mailcove.admin.runner import emit, run


@click.group()
def domain() -> None:
    """Local domains: mail for these is delivered here."""


@domain.command("add")
@click.argument("name")
@click.option("--alias-of", metavar="DOMAIN", help="Make NAME the same domain as DOMAIN (a@NAME == a@DOMAIN).")
@click.pass_obj
def add(obj: object, name: str, alias_of: str | None) -> None:
    """Add a local domain, or an alias of one."""
    info = run(obj.settings, lambda ctx: admin.add_domain(ctx, name, alias_of))  # type: ignore[attr-defined]
    suffix = f" (alias of {info.alias_of})" if info.alias_of else ""
    click.echo(f"added domain {info.name}{suffix}")


@domain.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_(obj: object, as_json: bool) -> None:
    """List local domains."""
    rows = run(obj.settings, admin.list_domains)  # type: ignore[attr-defined]
    emit(
        [{"name": d.name, "alias_of": d.alias_of} for d in rows],
        [("name", "Domain"), ("alias_of", "Alias of")],
        as_json=as_json,
        empty="no domains yet: mailcove domain add NAME",
    )


@domain.command("del")
@click.argument("name")
@click.pass_obj
def delete(obj: object, name: str) -> None:
    """Delete a local domain (it must have no users, aliases or alias domains left)."""
    run(obj.settings, lambda ctx: admin.delete_domain(ctx, name))  # type: ignore[attr-defined]
    click.echo(f"deleted domain {name.strip().lower()}")


def register(root: click.Group) -> None:
    root.add_command(domain)
