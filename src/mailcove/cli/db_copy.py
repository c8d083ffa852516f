"""`mailcove db copy --from sqlite:PATH --to postgresql://...` (and the reverse): move a whole
installation between store backends so that clients do not resync.

What moves: the directory (domains, users with their password hashes, aliases, access rules),
every account with its quota, every mailbox with its UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ,
subscription and expunge records (QRESYNC's VANISHED), every message's bytes, UID, flags,
keywords, MODSEQ and internal date, and the outbound queue with each recipient's state. It goes
through the store's export/restore methods (store/api.py), never around them, so each backend
keeps its own invariants (counters, blob placement, sequences).

The source must not be serving while it is copied (stop `mailcove serve` first): a message
arriving mid-copy might be missed. The target must be empty: `db copy` refuses otherwise, so it
never merges two installations. Memory is bounded: messages move in pages of at most
`PAGE_BYTES` (one message bigger than that moves alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from mailcove.store.api import MailStore

PAGE_MESSAGES = 200
PAGE_BYTES = 32 * 1024 * 1024
QUEUE_PAGE = 100


class CopyError(Exception):
    """Something the operator must fix (bad location, non-empty target); printed as one line."""


@dataclass(frozen=True)
class Location:
    kind: str  # "sqlite" | "postgres"
    where: str  # the data dir, or the DSN

    @classmethod
    def parse(cls, text: str) -> Location:
        if text.startswith(("postgresql://", "postgres://")):
            return cls("postgres", text)
        if text.startswith("sqlite:"):
            path = text[len("sqlite:") :]
            if not path:
                raise CopyError("sqlite: needs the data directory, e.g. sqlite:/var/lib/mailcove")
            return cls("sqlite", path)
        raise CopyError(f"not a store location: {text!r} (use sqlite:DATA_DIR or postgresql://...)")

    def __str__(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:{self.where}"
        from mailcove.directory.postgres import _redact

        return _redact(self.where)


@dataclass
class Report:
    accounts: int = 0
    mailboxes: int = 0
    messages: int = 0
    bytes: int = 0
    queue: int = 0
    problems: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def open_side(loc: Location, *, source: bool, spool_dir: Path) -> AsyncIterator[tuple[MailStore, Any]]:
    """The store and directory at `loc`, started; closed on exit."""
    from mailcove.config.settings import AuthSettings
    from mailcove.directory import SqliteDirectory

    store: Any
    directory: Any
    if loc.kind == "sqlite":
        from mailcove.store.sqlite import SqliteStore

        data = Path(loc.where)
        if source and not (data / "mail.db").exists():
            raise CopyError(f"{data} holds no mailcove store (no mail.db)")
        store = SqliteStore(data, watch_changes=False)
        directory = SqliteDirectory(data / "directory.db", auth=AuthSettings())
    else:
        from mailcove.directory.postgres import PostgresDirectory
        from mailcove.store.postgres import PostgresStore

        store = PostgresStore(loc.where, data_dir=spool_dir, watch_changes=False)
        directory = PostgresDirectory(loc.where, auth=AuthSettings())
    await store.start()
    try:
        await directory.start()
        try:
            yield store, directory
        finally:
            await directory.close()
    finally:
        await store.close()


async def _target_is_empty(store: MailStore, directory: Any) -> None:
    from mailcove.directory.postgres import export_directory

    if await store.list_accounts():
        raise CopyError("the target already has accounts: db copy only fills an empty installation")
    if await store.export_queue(0, 1):
        raise CopyError("the target's outbound queue is not empty")
    dump = await export_directory(directory)
    if dump.domains or dump.users or dump.aliases or dump.access:
        raise CopyError("the target's directory is not empty")


async def copy_installation(src: Location, dst: Location, *, echo: Any = None) -> Report:
    from mailcove.directory.postgres import export_directory, import_directory

    say = echo or (lambda _text: None)
    report = Report()
    with tempfile.TemporaryDirectory(prefix="mailcove-copy-") as tmp:
        async with (
            open_side(src, source=True, spool_dir=Path(tmp) / "src") as (s_store, s_dir),
            open_side(dst, source=False, spool_dir=Path(tmp) / "dst") as (d_store, d_dir),
        ):
            await _target_is_empty(d_store, d_dir)
            dump = await export_directory(s_dir)
            await import_directory(d_dir, dump)
            say(f"directory: {len(dump.domains)} domains, {len(dump.users)} users, {len(dump.aliases)} alias"
                f" targets, {len(dump.access)} access rules")
            for user in await s_store.list_accounts():
                await _copy_account(s_store, d_store, user, report)
                say(f"{user}: copied")
            after = 0
            while page := await s_store.export_queue(after, QUEUE_PAGE):
                for entry in page:
                    await d_store.restore_queue(entry)
                    report.queue += 1
                after = page[-1].item.id
            await _verify(s_store, d_store, report)
            if await export_directory(d_dir) != dump:
                report.problems.append("the directory differs after the copy")
    return report


async def _copy_account(src: MailStore, dst: MailStore, user: str, report: Report) -> None:
    state = await src.export_account(user)
    await dst.restore_account(state)
    report.accounts += 1
    for box in state.mailboxes:
        report.mailboxes += 1
        if box.noselect:
            continue
        mailbox_id = (await src.get_mailbox(user, box.name)).id
        after, limit = 0, PAGE_MESSAGES
        while page := await src.export_messages(mailbox_id, after, limit):
            # Keep a page's bytes near PAGE_BYTES: the next page's size follows this one's average.
            size = sum(len(m.data) for m in page)
            await dst.restore_messages(user, box.name, page)
            report.messages += len(page)
            report.bytes += size
            after = page[-1].uid
            limit = max(1, min(PAGE_MESSAGES, PAGE_BYTES * len(page) // max(size, 1)))


async def _verify(src: MailStore, dst: MailStore, report: Report) -> None:
    """Compare what a client's cache depends on, mailbox by mailbox."""
    keys = ("uidvalidity", "uidnext", "highestmodseq", "messages", "unseen", "size", "subscribed", "noselect")
    for user in await src.list_accounts():
        a = {m.name: m for m in await src.list_mailboxes(user)}
        b = {m.name: m for m in await dst.list_mailboxes(user)}
        if a.keys() != b.keys():
            report.problems.append(f"{user}: mailboxes differ: {sorted(a.keys() ^ b.keys())}")
            continue
        for name, m in a.items():
            diff = [k for k in keys if getattr(m, k) != getattr(b[name], k)]
            if diff:
                report.problems.append(f"{user}/{name}: {', '.join(diff)} differ")
        if await src.usage(user) != await dst.usage(user):
            report.problems.append(f"{user}: usage differs")


def register(group: click.Group) -> None:
    @group.command("copy")
    @click.option("--from", "source", required=True, metavar="LOCATION",
                  help="sqlite:DATA_DIR or postgresql://... (the installation to copy; stop its server first).")
    @click.option("--to", "target", required=True, metavar="LOCATION",
                  help="sqlite:DATA_DIR or postgresql://... (an empty installation; PostgreSQL: run `db migrate`).")
    def copy_cmd(source: str, target: str) -> None:
        """Copy a whole installation to another store backend: directory, mailboxes, messages with
        their UIDs, UIDVALIDITY, flags and MODSEQs, and the queue, so clients do not resync."""
        try:
            src, dst = Location.parse(source), Location.parse(target)
            if src == dst:
                raise CopyError("--from and --to are the same")
            t0 = time.monotonic()
            report = asyncio.run(copy_installation(src, dst, echo=click.echo))
        except CopyError as exc:
            click.echo(f"mailcove: {exc}", err=True)
            sys.exit(2)
        except ImportError as exc:
            click.echo(f"mailcove: {exc} (pip install 'mailcove[postgres]')", err=True)
            sys.exit(1)
        except Exception as exc:  # a database error: say which, exit non-zero
            click.echo(f"mailcove: {type(exc).__name__}: {exc}", err=True)
            sys.exit(1)
        click.echo(
            f"copied {report.accounts} accounts, {report.mailboxes} mailboxes, {report.messages} messages"
            f" ({report.bytes} bytes), {report.queue} queue entries from {src} to {dst}"
            f" in {time.monotonic() - t0:.1f} s"
        )
        if report.problems:
            for p in report.problems:
                click.echo(f"mailcove: MISMATCH {p}", err=True)
            sys.exit(1)
