"""`mailcove queue list|show|retry|delete|flush`: the outbound queue (needs access to the data dir;
a running server sees the changes at its next look at the queue, [queue] poll_interval)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import click


def _with_store(settings: Any, fn: Callable[[Any], Awaitable[Any]]) -> Any:
    from mailcove.store.factory import open_store

    async def go() -> Any:
        store = open_store(settings, watch_changes=False)
        await store.start()
        try:
            return await fn(store)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except Exception as exc:  # StoreError for an unknown id, or no store at all
        click.echo(f"mailcove: {getattr(exc, 'text', None) or exc}", err=True)
        sys.exit(1)


@click.group()
def queue() -> None:
    """The outbound queue: messages waiting for remote delivery."""


@queue.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_(obj: Any, as_json: bool) -> None:
    """List queued messages (the same as `mailcove mailq`)."""
    from mailcove.cli.mailq import print_queue

    sys.exit(print_queue(obj.settings, as_json=as_json))


@queue.command("show")
@click.argument("queue_id", type=int)
@click.option("--body", is_flag=True, help="Print the whole message, not only its header.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def show(obj: Any, queue_id: int, body: bool, as_json: bool) -> None:
    """Show one entry: envelope, each recipient's state, and the message header."""

    async def get(store: Any) -> tuple[Any, bytes]:
        return await store.queue_get(queue_id), await store.queue_read(queue_id)

    item, data = _with_store(obj.settings, get)
    env = item.envelope
    rcpts = [{"address": r.address, "status": r.status, "attempts": r.attempts, "next_attempt": r.next_attempt,
              "last_error": r.last_error, "notify": list(r.notify), "orcpt": r.orcpt} for r in item.recipients]
    if as_json:
        click.echo(json.dumps({"id": item.id, "created": item.created, "size": item.size, "sender": env.sender,
                               "envid": env.envid, "ret": env.ret, "body": env.body, "smtputf8": env.smtputf8,
                               "auth_user": env.auth_user, "client": env.client, "recipients": rcpts}, indent=2))
        return
    click.echo(f"id:        {item.id}")
    click.echo(f"arrived:   {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(item.created))}")
    click.echo(f"size:      {item.size}")
    click.echo(f"sender:    <{env.sender}>" + (f" (authenticated as {env.auth_user})" if env.auth_user else ""))
    for k, v in (("envid", env.envid), ("ret", env.ret), ("body", env.body)):
        if v:
            click.echo(f"{k + ':':<10} {v}")
    for r in item.recipients:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.next_attempt))
        state = f"{r.status}, {r.attempts} attempts" + (f", next {when}" if r.status == "queued" else "")
        click.echo(f"recipient: <{r.address}> {state}" + (f"\n           {r.last_error}" if r.last_error else ""))
    click.echo("")
    end = data.find(b"\r\n\r\n")
    text = data if body or end < 0 else data[: end + 2]
    click.echo(text.decode("utf-8", "replace").replace("\r\n", "\n"), nl=False)


@queue.command("retry")
@click.argument("queue_id", type=int)
@click.pass_obj
def retry(obj: Any, queue_id: int) -> None:
    """Try one entry again now."""
    n = _with_store(obj.settings, lambda s: s.queue_retry(queue_id, time.time()))
    click.echo(f"entry {queue_id}: {n} recipient{'s' if n != 1 else ''} due now")


@queue.command("flush")
@click.pass_obj
def flush(obj: Any) -> None:
    """Try every queued recipient again now (like `postqueue -f`)."""
    n = _with_store(obj.settings, lambda s: s.queue_retry(None, time.time()))
    click.echo(f"{n} recipient{'s' if n != 1 else ''} due now")


@queue.command("delete")
@click.argument("queue_ids", type=int, nargs=-1, required=True)
@click.pass_obj
def delete(obj: Any, queue_ids: tuple[int, ...]) -> None:
    """Remove entries without delivering or bouncing them."""

    async def go(store: Any) -> None:
        for qid in queue_ids:
            await store.queue_delete(qid)

    _with_store(obj.settings, go)
    click.echo(f"deleted {len(queue_ids)} entr{'ies' if len(queue_ids) != 1 else 'y'}")


def register(root: click.Group) -> None:
    root.add_command(queue)
