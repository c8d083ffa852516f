"""`mailcove db ...`: the database behind a networked store (PostgreSQL).

`mailcove db migrate` brings every PostgreSQL schema this mailcove knows (SCHEMAS) up to date;
servers only check the version at start and refuse an old one. Further `db` subcommands live in
their own modules, listed in DB_MODULES, each exposing `register(group)`: adding one is one line
here, not an edit of this module's commands."""

from __future__ import annotations

import asyncio
import importlib
import sys
from typing import Any

import click

# Modules that each define COMPONENT (a name in schema_version) and MIGRATIONS (a list of SQL
# scripts); `db migrate` applies them in this order.
SCHEMAS: tuple[str, ...] = ("mailcove.store.postgres.schema", "mailcove.directory.postgres_schema")
# Modules adding subcommands to the `db` group (`register(group)`), e.g. "mailcove.cli.db_copy".
DB_MODULES: tuple[str, ...] = ("mailcove.cli.db_copy",)


async def migrate_dsn(dsn: str) -> list[tuple[str, list[int]]]:
    """Apply every schema's missing migrations to the database at `dsn`; returns, per component,
    the versions applied. Tests call this to build their template database."""
    import asyncpg

    from mailcove.store.postgres.schema import apply_migrations

    conn = await asyncpg.connect(dsn)
    try:
        done = []
        for name in SCHEMAS:
            module = importlib.import_module(name)
            done.append((module.COMPONENT, await apply_migrations(conn, module.COMPONENT, module.MIGRATIONS)))
        return done
    finally:
        await conn.close()


@click.group()
def db() -> None:
    """The PostgreSQL database behind `[store] backend = "postgres"`."""


@db.command("migrate")
@click.option("--dsn", help="Connection string (default: [store] dsn from the config).")
@click.pass_obj
def migrate(obj: Any, dsn: str | None) -> None:
    """Create or upgrade the database schema. Safe to run again, and from several hosts at once."""
    target = dsn or obj.settings.store.dsn
    if not target:
        click.echo("mailcove: no database: set [store] dsn in the config or pass --dsn", err=True)
        sys.exit(2)
    try:
        done = asyncio.run(migrate_dsn(target))
    except ImportError:
        click.echo("mailcove: asyncpg is not installed (pip install 'mailcove[postgres]')", err=True)
        sys.exit(1)
    except (OSError, Exception) as exc:  # connection refused, bad DSN, a failing step
        click.echo(f"mailcove: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    for component, versions in done:
        if versions:
            click.echo(f"{component}: applied migration(s) {', '.join(map(str, versions))}")
        else:
            click.echo(f"{component}: up to date")


def register(root: click.Group) -> None:
    for name in DB_MODULES:
        importlib.import_module(name).register(db)
    root.add_command(db)
