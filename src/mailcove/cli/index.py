"""`mailcove index rebuild USER`: rebuild a user's full-text index for SEARCH BODY/TEXT
(store/rules/textindex.py); `mailcove index status`: how much is indexed.

    mailcove index rebuild a@hamap.local              # drop the user's entries, index them again now
    mailcove index rebuild a@hamap.local --background # drop them; the running server re-indexes

A running server keeps searching correctly meanwhile: a message whose text is not (yet) indexed
is found by SEARCH's exact scan, only more slowly. docs/imap.md, "Full-text search".
"""

from __future__ import annotations

import click

from mailcove.admin.context import AdminContext
from mailcove.admin.runner import run
from mailcove.check.textindex import describe
from mailcove.cli.import_mail import account_key


@click.group()
def index() -> None:
    """The full-text index that SEARCH BODY and TEXT use."""


@index.command("rebuild")
@click.argument("user")
@click.option("--background", is_flag=True,
              help="Only drop the user's entries: the running server indexes them again in the background.")
@click.pass_obj
def rebuild(obj: object, user: str, background: bool) -> None:
    """Drop USER's index entries and index their messages again."""
    settings = obj.settings  # type: ignore[attr-defined]
    user = user.strip().lower()

    async def use_case(ctx: AdminContext) -> tuple[int, int, int, int]:
        store = await ctx.store()
        key = await account_key(ctx, user, create=False)
        dropped = await store.reset_index(key)
        indexed = 0
        if not background:
            after = 0
            while True:
                n, last = await store.index_pending(after)
                if not n:
                    break
                indexed += n
                after = last
        return dropped, indexed, *await store.index_progress()

    dropped, indexed, waiting, total = run(settings, use_case)
    if background:
        click.echo(f"{user}: {dropped} messages to index again; the running server indexes them")
    else:
        click.echo(f"{user}: {dropped} messages dropped from the index, {indexed} indexed")
    click.echo(describe(waiting, total))


@index.command("status")
@click.pass_obj
def status(obj: object) -> None:
    """Print how many message bodies are indexed."""

    async def use_case(ctx: AdminContext) -> tuple[int, int]:
        return await (await ctx.store()).index_progress()

    click.echo(describe(*run(obj.settings, use_case)))  # type: ignore[attr-defined]


def register(root: click.Group) -> None:
    root.add_command(index)
