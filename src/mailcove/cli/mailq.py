"""`mailcove mailq`: the outbound queue, like Postfix's mailq (needs access to the data dir)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import click


async def _items(settings: Any) -> list[Any]:
    from mailcove.store.factory import open_store

    store = open_store(settings, watch_changes=False)
    await store.start()
    try:
        return await store.queue_list()
    finally:
        await store.close()


def print_queue(settings: Any, *, as_json: bool) -> int:
    try:
        items = asyncio.run(_items(settings))
    except Exception as exc:
        click.echo(f"mailcove: cannot read the queue in {settings.data_dir}: {exc}", err=True)
        return 75
    if as_json:
        out = [
            {
                "id": i.id,
                "created": i.created,
                "size": i.size,
                "sender": i.envelope.sender,
                "auth_user": i.envelope.auth_user,
                "recipients": [
                    {"address": r.address, "status": r.status, "attempts": r.attempts, "last_error": r.last_error}
                    for r in i.recipients
                ],
            }
            for i in items
        ]
        click.echo(json.dumps(out, indent=2))
        return 0
    if not items:
        click.echo("Mail queue is empty")
        return 0
    click.echo(f"{'-Queue ID-':<10} {'--Size--':>9} {'----Arrival Time----':<20} -Sender/Recipient-------")
    total = 0
    for i in items:
        when = time.strftime("%a %b %d %H:%M:%S", time.localtime(i.created))
        click.echo(f"{i.id:<10} {i.size:>9} {when:<20} {i.envelope.sender or '<>'}")
        for r in i.recipients:
            note = f" ({r.last_error})" if r.last_error else ""
            state = "" if r.status == "queued" else f" [{r.status}]"
            click.echo(f"{'':<42}{r.address}{state}{note}")
        total += i.size
    click.echo(f"-- {total // 1024} Kbytes in {len(items)} Request{'s' if len(items) != 1 else ''}.")
    return 0


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def mailq(obj: Any, as_json: bool) -> None:
    """List the outbound queue (messages waiting for remote delivery)."""
    sys.exit(print_queue(obj.settings, as_json=as_json))


def register(root: click.Group) -> None:
    root.add_command(mailq)
